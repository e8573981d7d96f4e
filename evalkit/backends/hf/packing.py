"""Pack many short scoring segments into few rows, with a tree-shaped attention mask.

A *segment* is a token tree: one context's own tokens (the trunk, after its shared
prefix) followed by the trie of its continuations' inputs, so continuations that start
with the same tokens (" the Sun", " the Moon") share them. Every token sees the shared
prefix and its own ancestors, never another branch, and its position is its depth after
the prefix, so each continuation is scored exactly as if it were alone after its
context while every shared token is computed once. Several segments share a row (each
sees only itself and the prefix), so short requests fill a forward pass without padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Segment:
    """A token tree in topological order: ``parents[i]`` is the index of token ``i``'s
    parent (-1 for the first token, whose parent is the shared prefix); the first
    ``trunk`` tokens form a chain. ``outputs`` lists what to score as ``(token index,
    target token, owner)`` (``owner`` is the caller's id)."""

    tokens: list[int]
    parents: list[int]
    outputs: list[tuple[int, int, int]]
    trunk: int

    def __len__(self) -> int:
        return len(self.tokens)

    def depths(self) -> list[int]:
        out: list[int] = []
        for p in self.parents:
            out.append(out[p] + 1 if p >= 0 else 0)
        return out

    def branch_ancestors(self) -> list[list[int]]:
        """For each token past the trunk: itself and its ancestors past the trunk (it
        also sees the whole trunk)."""
        out: list[list[int]] = []
        for i in range(self.trunk, len(self.tokens)):
            p = self.parents[i]
            out.append((out[p - self.trunk] if p >= self.trunk else []) + [i])
        return out


def continuation_segment(context_tail: list[int], continuations: Sequence[tuple[list[int], int]]) -> Segment:
    """A segment scoring each ``(continuation tokens, owner)`` after ``context_tail``.

    The output at the trunk's last token predicts every continuation's first token; the
    node of a continuation's ``t``-th token predicts its ``t+1``-th. A continuation's last
    token is never fed, so it adds no node.
    """
    tokens = list(context_tail)
    parents = list(range(-1, len(tokens) - 1))
    last = len(tokens) - 1
    children: dict[tuple[int, int], int] = {}  # (parent node, token) -> node
    outputs: list[tuple[int, int, int]] = []
    for cont, owner in continuations:
        node = last
        outputs.append((node, cont[0], owner))
        for t in range(len(cont) - 1):
            key = (node, cont[t])
            if key not in children:
                children[key] = len(tokens)
                tokens.append(cont[t])
                parents.append(node)
            node = children[key]
            outputs.append((node, cont[t + 1], owner))
    return Segment(tokens, parents, outputs, len(context_tail))


def context_segments(context_tail: list[int], continuations: Sequence[tuple[list[int], int]],
                     max_tokens: int) -> list[Segment]:
    """``continuation_segment`` split so that no segment exceeds ``max_tokens`` or four
    times the context's tail, whichever is larger (unless one continuation alone does);
    each extra segment recomputes the tail, which the second bound keeps to at most a
    quarter more work.

    Without the split, one context with thousands of continuations (CrowS-Pairs sentences
    after an empty context) becomes one row tens of thousands of tokens wide, whose
    attention mask alone takes gigabytes.
    """
    limit = max(max_tokens, 4 * len(context_tail))
    out: list[Segment] = []
    chunk: list[tuple[list[int], int]] = []
    size = len(context_tail)
    for cont, owner in continuations:
        grow = len(cont) - 1  # a continuation's last token adds no node
        if chunk and size + grow > limit:
            out.append(continuation_segment(context_tail, chunk))
            chunk, size = [], len(context_tail)
        chunk.append((cont, owner))
        size += grow
    if chunk:
        out.append(continuation_segment(context_tail, chunk))
    return out


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Group segment indices into rows of at most ``width`` tokens (longest first; a
    segment longer than ``width`` gets a row of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    room: list[int] = []
    # First fit over the last few open rows: nearly as tight as full first fit, linear time.
    for i in order:
        for r in range(max(0, len(rows) - 8), len(rows)):
            if lengths[i] <= room[r]:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(width - lengths[i])
    return rows


@dataclass
class PackedBatch:
    """Model inputs for rows of segments after a shared prefix of ``prefix_len`` tokens."""

    input_ids: Any  # [B, W]
    position_ids: Any  # [B, W]
    attention_mask: Any  # [B, 1, W, prefix_len + W], additive (0 = attend)
    out_rows: Any  # [n] row of each scored output
    out_cols: Any  # [n] column of each scored output
    targets: Any  # [n] target token of each output
    owners: list[int]  # [n] owner id of each output
    n_tokens: int  # real (non-padding) tokens


def build_batch(segments: Sequence[Segment], rows: Sequence[Sequence[int]], prefix_len: int,
                pad_id: int, dtype: Any, device: Any) -> PackedBatch:
    """Tensors for ``rows`` (lists of indices into ``segments``), left-padded to one width."""
    import torch

    width = max(sum(len(segments[s]) for s in row) for row in rows)
    n_rows = len(rows)
    ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    pos = torch.zeros((n_rows, width), dtype=torch.long)
    # Padding attends to itself only (no empty softmax row); real tokens to their ancestors.
    allowed = torch.eye(width, dtype=torch.bool).repeat(n_rows, 1, 1)
    real = torch.zeros((n_rows, width), dtype=torch.bool)
    q_idx: list[int] = []
    k_idx: list[int] = []
    r_idx: list[int] = []
    out_rows: list[int] = []
    out_cols: list[int] = []
    targets: list[int] = []
    owners: list[int] = []
    n_tokens = 0
    for r, row in enumerate(rows):
        col = width - sum(len(segments[s]) for s in row)
        for s in row:
            seg = segments[s]
            n = len(seg)
            ids[r, col : col + n] = torch.tensor(seg.tokens, dtype=torch.long)
            pos[r, col : col + n] = torch.tensor(seg.depths(), dtype=torch.long) + prefix_len
            real[r, col : col + n] = True
            t = seg.trunk
            allowed[r, col : col + t, col : col + t] = torch.ones((t, t), dtype=torch.bool).tril()
            allowed[r, col + t : col + n, col : col + t] = True
            for i, anc in enumerate(seg.branch_ancestors(), start=t):
                q_idx.extend([col + i] * len(anc))
                k_idx.extend(col + a for a in anc)
            r_idx.extend([r] * (len(q_idx) - len(r_idx)))
            for node, tgt, owner in seg.outputs:
                out_rows.append(r)
                out_cols.append(col + node)
                targets.append(tgt)
                owners.append(owner)
            col += n
            n_tokens += n
    if q_idx:
        allowed[torch.tensor(r_idx), torch.tensor(q_idx), torch.tensor(k_idx)] = True
    if prefix_len:
        allowed = torch.cat([real[:, :, None].expand(n_rows, width, prefix_len), allowed], dim=-1)
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return PackedBatch(
        input_ids=ids.to(device),
        position_ids=pos.to(device),
        attention_mask=mask[:, None].to(device),
        out_rows=torch.tensor(out_rows, dtype=torch.long, device=device),
        out_cols=torch.tensor(out_cols, dtype=torch.long, device=device),
        targets=torch.tensor(targets, dtype=torch.long, device=device),
        owners=owners,
        n_tokens=n_tokens,
    )
