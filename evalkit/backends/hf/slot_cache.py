"""A slot-indexed key/value cache for continuous batching, over shared prefixes.

Each generating row holds a *slot*: preallocated ``[slots, kv_heads, capacity + 1,
head_dim]`` buffers per layer for its own tokens (its prompt past the shared prefix, then
what it generates), with its own length, position and attention-mask row. A row that
finishes frees only its slot, and a new row is written into that slot alone: nothing is
copied or re-gathered per decoding step or per finished row (``compact`` copies the live
slots to the front, only while the queue is drained, at most log2(slots) times).

Shared prefixes (few-shot exemplars) are not copied into the slots: the prefixes of the
rows in flight form a *bank* (one ``[1, kv_heads, P, head_dim]`` tensor per layer) that a
decoding step reads once for all slots (``slot_attention``), each slot seeing its own
prefix's columns through a mask. A step's attention covers the bank then the slots'
columns ``[0, width)``; free slots in ``[0, n_run)`` decode a pad token into a scratch
column past ``capacity`` and are ignored. Buffers start zeroed, so masked columns are
always finite (an additive mask does not hide a NaN).
"""

from __future__ import annotations

import functools
from typing import Any


class SlotCache:
    """The per-slot state and the transformers cache that reads and writes the buffers."""

    def __init__(self, slots: int, capacity: int) -> None:
        """Buffers are allocated at the first ``admit``, shaped like the keys it writes."""
        self.slots, self.capacity = slots, capacity
        self.keys: list[Any] = []
        self.values: list[Any] = []
        self.mask: Any = None  # [slots, capacity + 1] additive mask of each slot's own columns
        self.length = [0] * slots  # own columns filled (the next token's column)
        self.position = [0] * slots  # the next token's position id
        self.live = [False] * slots
        self.prefix_of: list[Any] = [None] * slots  # each slot's prefix (a bank key) or None
        self.n_run = 0  # decoding steps run slots [0, n_run)
        self.width = 1
        self.bank: list[tuple[Any, int]] = []  # (prefix, first bank column), in bank order
        self.bank_keys: list[Any] = []  # per layer [1, kv_heads, P, head_dim]
        self.bank_values: list[Any] = []
        self.bank_len = 0
        # Per decoding step: None when every slot's bank columns are the whole bank (one prefix
        # in flight), else [(first bank column, length, slot indices)] per prefix with live
        # slots; the step's bank part is then as wide as the longest of those prefixes.
        self.segments: list[tuple[int, int, Any]] | None = None
        self._write: Any = None  # [n_run, 1, 1, 1] column each running slot writes this step
        self.cache: Any = None  # the transformers cache a decoding step is given

    def _allocate(self, layers: list[tuple[Any, Any]]) -> None:
        import torch
        from transformers import DynamicCache

        c = self.capacity + 1
        self.keys = [k.new_zeros((self.slots, k.shape[1], c, k.shape[3])) for k, _ in layers]
        self.values = [v.new_zeros((self.slots, v.shape[1], c, v.shape[3])) for _, v in layers]
        dtype = layers[0][0].dtype
        self._min = torch.finfo(dtype).min
        self.mask = torch.full((self.slots, c), self._min, dtype=dtype, device=layers[0][0].device)
        self.mask[:, 0] = 0  # a free slot attends to column 0, so its softmax is never empty
        self.cache = DynamicCache()
        self.cache.layers = [_slot_layer_class()(self, i) for i in range(len(layers))]

    # ------------------------------------------------------------------ slots
    def free_slots(self) -> list[int]:
        return [s for s in range(self.slots) if not self.live[s]]

    def admit(self, slots: list[int], layers: list[tuple[Any, Any]], attention: Any, positions: list[int],
              prefix: Any = None) -> None:
        """Write rows' own keys/values (``[len(slots), h, n, d]`` per layer; 2D ``attention``
        ``[len(slots), n]`` of 0/1) into ``slots``; ``positions``: each row's next position;
        ``prefix``: the ``PrefixCache`` the rows continue (joins the bank), or None."""
        import torch

        if self.mask is None:
            self._allocate(layers)
        n = attention.shape[1]
        if n >= self.capacity:
            raise ValueError(f"a row of {n} own tokens does not fit slots of {self.capacity}")
        if prefix is not None and all(p is not prefix for p, _ in self.bank):
            self._rebuild_bank(prefix)
        idx = torch.tensor(slots, device=self.mask.device)
        for (k, v), kb, vb in zip(layers, self.keys, self.values):
            kb[idx, :, :n] = k
            vb[idx, :, :n] = v
        rows = torch.full((len(slots), self.capacity + 1), self._min, dtype=self.mask.dtype, device=idx.device)
        rows[:, :n].masked_fill_(attention.bool(), 0)
        self.mask[idx] = rows
        for s, p in zip(slots, positions):
            self.length[s], self.position[s], self.live[s], self.prefix_of[s] = n, p, True, prefix
        self.n_run = max(self.n_run, max(slots) + 1)

    def _rebuild_bank(self, new: Any) -> None:
        """The bank of the live slots' prefixes plus ``new`` (one copy of each, per new prefix)."""
        import torch

        keep = [p for p, _ in self.bank if any(self.live[s] and self.prefix_of[s] is p for s in range(self.slots))]
        self.bank, start = [], 0
        for p in [*keep, new]:
            self.bank.append((p, start))
            start += p.length
        self.bank_len = start
        n_layers = len(self.keys)
        self.bank_keys = [torch.cat([p.layers[i][0] for p, _ in self.bank], dim=2) for i in range(n_layers)]
        self.bank_values = [torch.cat([p.layers[i][1] for p, _ in self.bank], dim=2) for i in range(n_layers)]

    def release(self, slot: int) -> None:
        """Free ``slot``: its mask row goes back to column 0 only; its buffers are left as they are."""
        self.live[slot] = False
        self.prefix_of[slot] = None
        self.mask[slot] = self._min
        self.mask[slot, 0] = 0
        while self.n_run and not self.live[self.n_run - 1]:
            self.n_run -= 1

    def compact(self) -> dict[int, int]:
        """Move live slots to the front (only when at most half of ``[0, n_run)`` is live);
        returns ``{old slot: new slot}`` of the moved ones."""
        live = [s for s in range(self.n_run) if self.live[s]]
        if not live or len(live) * 2 > self.n_run:
            return {}
        import torch

        moves = {old: new for new, old in enumerate(live) if old != new}
        if not moves:
            return {}
        src = torch.tensor(list(moves), device=self.mask.device)
        dst = torch.tensor(list(moves.values()), device=self.mask.device)
        w = max(self.length[s] for s in live)
        for kb, vb in zip(self.keys, self.values):
            kb[dst, :, :w] = kb[src, :, :w]
            vb[dst, :, :w] = vb[src, :, :w]
        self.mask[dst] = self.mask[src]
        state = [(self.length[s], self.position[s], self.prefix_of[s]) for s in live]
        for s in range(self.n_run):
            self.live[s], self.prefix_of[s] = False, None
        for s, (length, position, prefix) in enumerate(state):
            self.length[s], self.position[s], self.prefix_of[s], self.live[s] = length, position, prefix, True
        self.mask[len(live) : self.n_run] = self._min
        self.mask[len(live) : self.n_run, 0] = 0
        self.n_run = len(live)
        return moves

    # ------------------------------------------------------------------ decoding
    def step_inputs(self) -> tuple[Any, Any]:
        """``(position_ids [n_run, 1], attention_mask [n_run, 1, 1, B + width])`` of the next
        decoding step, after opening each live slot's next column. ``B`` is ``bank_len``
        when one prefix is in flight and fills the bank; otherwise each slot reads only its
        own prefix (``segments``) and ``B`` is the longest such prefix, so rows with
        different prefixes (BBH's 27 tasks, a finished prefix still in the bank) do not
        each score every other prefix's columns."""
        import torch

        cols = []
        for s in range(self.n_run):
            if self.live[s]:
                self.mask[s, self.length[s]] = 0
                cols.append(self.length[s])
            else:
                cols.append(self.capacity)  # the scratch column, outside every slot's view
        self.width = max(self.length[s] + 1 for s in range(self.n_run) if self.live[s])
        dev = self.mask.device
        self._write = torch.tensor(cols, device=dev).view(-1, 1, 1, 1)
        pos = torch.tensor([self.position[s] for s in range(self.n_run)], device=dev)[:, None]
        own = self.mask[: self.n_run, : self.width]
        self.segments = None
        if not self.bank_len:
            return pos, own[:, None, None]
        groups = []
        for p, start in self.bank:
            rows = [s for s in range(self.n_run) if self.live[s] and self.prefix_of[s] is p]
            if rows:
                groups.append((start, p.length, torch.tensor(rows, device=dev)))
        span = max((length for _, length, _ in groups), default=0)
        bank = torch.full((self.n_run, span), self._min, dtype=own.dtype, device=dev)
        for _, length, rows in groups:
            bank[rows, :length] = 0
        if not (len(groups) == 1 and span == self.bank_len):  # else: one prefix fills the bank
            self.segments = groups
        return pos, torch.cat([bank, own], dim=1)[:, None, None]

    def advance(self) -> None:
        """After a decoding step: every live slot holds one more token."""
        for s in range(self.n_run):
            if self.live[s]:
                self.length[s] += 1
                self.position[s] += 1

    def write(self, layer: int, key_states: Any, value_states: Any) -> tuple[Any, Any]:
        """One decoding step's keys/values ``[n_run, h, 1, d]`` into each slot's next column;
        returns the slots' own keys/values ``[n_run, h, width, d]`` (views)."""
        kb, vb = self.keys[layer], self.values[layer]
        n = key_states.shape[0]
        idx = self._write.expand(n, key_states.shape[1], 1, key_states.shape[3])
        kb[:n].scatter_(2, idx, key_states)
        vb[:n].scatter_(2, idx, value_states)
        return kb[:n, :, : self.width], vb[:n, :, : self.width]


@functools.lru_cache(maxsize=None)
def _slot_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class _SlotLayer(DynamicLayer):
        """A transformers cache layer whose update writes one token per running slot."""

        def __init__(self, owner: SlotCache, index: int) -> None:
            super().__init__()
            self.owner, self.index = owner, index
            self.is_initialized = True
            self.device = owner.mask.device

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            return self.owner.write(self.index, key_states, value_states)

        def get_seq_length(self) -> int:
            return self.owner.bank_len + self.owner.width

    return _SlotLayer
