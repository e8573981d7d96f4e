"""Pack many short scoring segments into few rows, with a tree-shaped attention mask.

A *segment* is one context's own tokens (the trunk, after its shared prefix) followed by
the inputs of each of its continuations (branches). Every branch sees the shared prefix,
the trunk and itself, never another branch, and its positions continue from the trunk's
end, so each continuation is scored exactly as if it were alone after its context, while
the trunk is computed once for all of them. Several segments share a row (each sees only
itself and the prefix), so short requests fill a forward pass without padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Segment:
    """``trunk`` then ``branches``; ``outputs`` lists what to score, as
    ``(local position, target token, owner)`` triples (``owner`` is the caller's id)."""

    trunk: list[int]
    branches: list[list[int]]
    outputs: list[tuple[int, int, int]]

    def __len__(self) -> int:
        return len(self.trunk) + sum(len(b) for b in self.branches)

    def layout(self) -> tuple[list[int], list[int], list[int]]:
        """Tokens, branch id (0 = trunk) and position offset of each packed token."""
        tokens = list(self.trunk)
        branch = [0] * len(self.trunk)
        pos = list(range(len(self.trunk)))
        for j, b in enumerate(self.branches, start=1):
            tokens.extend(b)
            branch.extend([j] * len(b))
            pos.extend(range(len(self.trunk), len(self.trunk) + len(b)))
        return tokens, branch, pos


def continuation_segment(context_tail: list[int], continuations: Sequence[tuple[list[int], int]]) -> Segment:
    """A segment scoring each ``(continuation tokens, owner)`` after ``context_tail``.

    The output at the trunk's last token predicts every continuation's first token; a
    branch feeds a continuation minus its last token, whose outputs predict the rest.
    """
    last = len(context_tail) - 1
    branches, outputs = [], []
    offset = len(context_tail)
    for cont, owner in continuations:
        branches.append(list(cont[:-1]))
        outputs.append((last, cont[0], owner))
        outputs.extend((offset + t, cont[t + 1], owner) for t in range(len(cont) - 1))
        offset += len(cont) - 1
    return Segment(list(context_tail), branches, outputs)


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
    seg = torch.full((n_rows, width), -1, dtype=torch.long)  # -1 = padding
    br = torch.zeros((n_rows, width), dtype=torch.long)
    out_rows: list[int] = []
    out_cols: list[int] = []
    targets: list[int] = []
    owners: list[int] = []
    n_tokens = 0
    for r, row in enumerate(rows):
        col = width - sum(len(segments[s]) for s in row)
        for k, s in enumerate(row):
            tokens, branch, offs = segments[s].layout()
            n = len(tokens)
            ids[r, col : col + n] = torch.tensor(tokens, dtype=torch.long)
            pos[r, col : col + n] = torch.tensor(offs, dtype=torch.long) + prefix_len
            seg[r, col : col + n] = k
            br[r, col : col + n] = torch.tensor(branch, dtype=torch.long)
            for p, tgt, owner in segments[s].outputs:
                out_rows.append(r)
                out_cols.append(col + p)
                targets.append(tgt)
                owners.append(owner)
            col += n
            n_tokens += n
    q = torch.arange(width)
    real = seg >= 0
    # Within a row: same segment, not in the future, and trunk or the query's own branch.
    allowed = (
        (seg[:, :, None] == seg[:, None, :])
        & real[:, :, None]
        & (q[None, None, :] <= q[None, :, None])
        & ((br[:, None, :] == 0) | (br[:, None, :] == br[:, :, None]))
    )
    allowed |= torch.eye(width, dtype=torch.bool)[None]  # padding attends to itself: no empty softmax row
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
