"""A slot-indexed key/value cache for continuous batching, over shared prefixes.

Each generating row holds a *slot*: preallocated ``[slots, kv_heads, capacity + 1,
head_dim]`` buffers per layer for its own tokens (its prompt past its prefix, then what
it generates), with its own length, position and attention-mask row. A row that
finishes frees only its slot, and a new row is written into that slot alone: nothing is
copied or re-gathered per decoding step or per finished row (``compact``, only once the
queue is drained, moves the last live slots into the holes finished rows left, one slot's
buffers per hole, so the free slots stop running in every step).

Prefixes (shared few-shot exemplars, or one long prompt of its own) are not copied into
the slots: a decoding step reads each prefix in flight once, in place, for all the slots
continuing it (``slot_attention``). A step's attention covers the prefix columns (the
longest prefix in flight; each slot sees only its own prefix's) then the slots' columns
``[0, width)``; free slots in ``[0, n_run)`` decode a pad token into a scratch column past
``capacity`` and are ignored. Buffers start zeroed, so masked columns are always finite
(an additive mask does not hide a NaN).
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
        self.prefix_of: list[Any] = [None] * slots  # each slot's PrefixCache, or None
        self.n_run = 0  # decoding steps run slots [0, n_run)
        self.width = 1
        # Per decoding step: the one prefix every prefixed slot continues (``single``), or
        # with several in flight [(prefix, slot indices)] (``segments``); ``span``: the
        # step's prefix columns (the longest prefix in flight).
        self.single: Any = None
        self.segments: list[tuple[Any, Any]] | None = None
        self.span = 0
        self._write: Any = None  # [n_run, 1, 1, 1] column each running slot writes this step
        self._prefill: Any = None  # (slot indices, own width, prefix) while a prefill call runs
        self.cache: Any = None  # the transformers cache a decoding step is given

    def _allocate(self, layout: tuple[int, int, int], dtype: Any, device: Any) -> None:
        """The mask, the transformers cache and every layer's key/value buffers, all before
        the first forward call: buffers allocated in the middle of one take the memory its
        activations would reuse, and that call then runs several times slower."""
        import torch
        from transformers import DynamicCache

        n_layers, kv_heads, head_dim = layout
        self._min = torch.finfo(dtype).min
        self.mask = torch.full((self.slots, self.capacity + 1), self._min, dtype=dtype, device=device)
        self.mask[:, 0] = 0  # a free slot attends to column 0, so its softmax is never empty
        shape = (self.slots, kv_heads, self.capacity + 1, head_dim)
        self.keys = [_zeros(shape, self.mask) for _ in range(n_layers)]
        self.values = [_zeros(shape, self.mask) for _ in range(n_layers)]
        self.cache = DynamicCache()
        self.cache.layers = [_slot_layer_class()(self, i) for i in range(n_layers)]

    # ------------------------------------------------------------------ slots
    def free_slots(self) -> list[int]:
        return [s for s in range(self.slots) if not self.live[s]]

    def admit(self, slots: list[int], layers: list[tuple[Any, Any]], attention: Any, positions: list[int],
              prefix: Any = None) -> None:
        """Write rows' own keys/values (``[len(slots), h, n, d]`` per layer, computed
        elsewhere) into ``slots``: ``begin_prefill``'s bookkeeping, then each layer's write."""
        k = layers[0][0]
        self.begin_prefill(slots, attention, positions, prefix, layout=(len(layers), k.shape[1], k.shape[3]),
                           dtype=k.dtype)
        for i, (k, v) in enumerate(layers):
            self.write(i, k, v)
        self.end_prefill()

    def begin_prefill(self, slots: list[int], attention: Any, positions: list[int], prefix: Any, *,
                      layout: tuple[int, int, int], dtype: Any) -> Any:
        """Give ``slots`` to rows whose own prompt tokens (2D 0/1 ``attention [n, w]``, left
        padded) the next forward call runs after ``prefix`` (a ``PrefixCache`` or None);
        ``layout``: the model's ``kv_layout``; ``positions``: each row's position after its prompt. Until
        ``end_prefill`` the cache writes those tokens' keys/values straight into the slots
        and the attention reads ``prefix`` from its own tensors, not copied per row.
        Returns the call's ``[n, 1, w, P + w]`` additive mask: the whole prefix, then the
        row's own tokens causally (padding hidden; a padding query sees itself)."""
        import torch

        dev = attention.device
        if self.mask is None:
            self._allocate(layout, dtype, dev)
        n, w = attention.shape
        if w >= self.capacity:
            raise ValueError(f"a row of {w} own tokens does not fit slots of {self.capacity}")
        idx = torch.tensor(slots, device=dev)
        keep = attention.bool()
        rows = torch.full((n, self.capacity + 1), self._min, dtype=self.mask.dtype, device=dev)
        rows[:, :w].masked_fill_(keep, 0)
        self.mask[idx] = rows
        for s, p in zip(slots, positions):
            self.length[s], self.position[s], self.live[s], self.prefix_of[s] = w, p, True, prefix
        self.n_run = max(self.n_run, max(slots) + 1)
        self._prefill = (idx, w, prefix)
        self.single, self.segments = None, None
        sees = torch.ones((w, w), dtype=torch.bool, device=dev).tril()[None] & keep[:, None, :]
        sees |= torch.eye(w, dtype=torch.bool, device=dev)[None]
        p_len = prefix.length if prefix is not None else 0
        mask = torch.zeros((n, 1, w, p_len + w), dtype=self.mask.dtype, device=dev)
        mask[:, 0, :, p_len:].masked_fill_(~sees, self._min)
        return mask

    def end_prefill(self) -> None:
        self._prefill = None

    @property
    def prefilling(self) -> bool:
        """Whether the call in progress is a prefill (``begin_prefill``), not a decoding step."""
        return self._prefill is not None

    def bank_of(self, layer: int) -> tuple[Any, Any]:
        """The prefix keys/values ``[1, h, P, d]`` the current call reads at ``layer`` when
        one prefix serves every row: the prefilling rows' prefix, or ``single``."""
        prefix = self._prefill[2] if self._prefill is not None else self.single
        return prefix.layers[layer]

    @property
    def bank_len(self) -> int:
        """Tokens of the prefixes the live slots continue (each counted once)."""
        seen = {id(p): p.length for s, p in enumerate(self.prefix_of) if self.live[s] and p is not None}
        return sum(seen.values())

    def release(self, slot: int) -> None:
        """Free ``slot``: its mask row goes back to column 0 only; its buffers are left as they are."""
        self.live[slot] = False
        self.prefix_of[slot] = None
        self.mask[slot] = self._min
        self.mask[slot, 0] = 0
        while self.n_run and not self.live[self.n_run - 1]:
            self.n_run -= 1

    def compact(self) -> dict[int, int]:
        """Move the last live slots into the free slots before them, so the running slots
        ``[0, n_run)`` are all live: a free slot in that range costs a step as much as a
        live one (its pad token runs through every layer), and after the queue drains
        no new row would fill it. Returns ``{old slot: new slot}`` of the moved ones."""
        live = [s for s in range(self.n_run) if self.live[s]]
        holes = [s for s in range(len(live)) if not self.live[s]]
        if not holes:
            return {}
        import torch

        moves = dict(zip(reversed(live), holes))
        src = torch.tensor(list(moves), device=self.mask.device)
        dst = torch.tensor(list(moves.values()), device=self.mask.device)
        w = max(self.length[s] for s in moves)
        for kb, vb in zip(self.keys, self.values):
            kb[dst, :, :w] = kb[src, :, :w]
            vb[dst, :, :w] = vb[src, :, :w]
        self.mask[dst] = self.mask[src]
        for old, new in moves.items():
            self.length[new], self.position[new] = self.length[old], self.position[old]
            self.prefix_of[new] = self.prefix_of[old]
            self.live[new], self.live[old], self.prefix_of[old] = True, False, None
        self.mask[src] = self._min
        self.mask[src, 0] = 0
        self.n_run = len(live)
        return moves

    # ------------------------------------------------------------------ decoding
    def step_inputs(self, q: int = 1) -> tuple[Any, Any]:
        """``(position_ids [n_run, q], attention_mask [n_run, 1, q, span + width])`` of the
        next decoding step, which runs ``q`` tokens per slot (its next token, then guessed
        ones), after opening each live slot's next ``q`` columns; each of the ``q`` sees
        the ones before it. The first ``span`` columns are prefix columns: each slot sees its
        own prefix's (``single`` or ``segments``), so rows of different prefixes (BBH's 27
        tasks, long prompts kept as prefixes of their own) do not each score every other
        prefix's columns."""
        import torch

        dev = self.mask.device
        starts = []
        for s in range(self.n_run):
            if self.live[s]:
                self.mask[s, self.length[s] : self.length[s] + q] = 0
                starts.append(self.length[s])
            else:
                starts.append(self.capacity)  # the scratch column, outside every slot's view
        self.width = max(self.length[s] + q for s in range(self.n_run) if self.live[s])
        first = torch.tensor(starts, device=dev)
        steps = torch.arange(q, device=dev)
        cols = (first[:, None] + steps).clamp(max=self.capacity)  # a free slot writes only its scratch column
        self._write = cols.view(self.n_run, 1, q, 1)
        pos = torch.tensor([self.position[s] for s in range(self.n_run)], device=dev)[:, None] + steps
        # Query i of a slot does not see the columns its later guesses write.
        later = torch.arange(self.width, device=dev)[None, None] > (first[:, None] + steps)[:, :, None]
        own = self.mask[: self.n_run, None, : self.width].expand(-1, q, -1).masked_fill(later, self._min)
        by_prefix: dict[int, tuple[Any, list[int]]] = {}
        for s in range(self.n_run):
            p = self.prefix_of[s]
            if self.live[s] and p is not None:
                by_prefix.setdefault(id(p), (p, []))[1].append(s)
        groups = [(p, torch.tensor(rows, device=dev)) for p, rows in by_prefix.values()]
        self.single = groups[0][0] if len(groups) == 1 else None
        self.segments = groups if len(groups) > 1 else None
        self.span = max((p.length for p, _ in groups), default=0)
        if not groups:
            return pos, own[:, None]
        bank = torch.full((self.n_run, self.span), self._min, dtype=own.dtype, device=dev)
        for p, rows in groups:
            bank[rows, : p.length] = 0
        return pos, torch.cat([bank[:, None].expand(-1, q, -1), own], dim=2)[:, None]

    def advance(self, kept: dict[int, int] | None = None) -> None:
        """After a decoding step of ``q`` tokens per slot: each live slot keeps the first
        ``kept[slot]`` of them (all one, by default); the columns of the rest are hidden
        again, for the next step to overwrite."""
        for s in range(self.n_run):
            if self.live[s]:
                n = kept[s] if kept is not None else 1
                self.mask[s, self.length[s] + n : self.width] = self._min
                self.length[s] += n
                self.position[s] += n

    def write(self, layer: int, key_states: Any, value_states: Any) -> tuple[Any, Any]:
        """A call's keys/values into the slots. Prefilling: ``[n, h, w, d]`` into the
        admitted slots' columns ``[0, w)``, returned as they are. Decoding: ``[n_run, h, q,
        d]`` into each slot's next ``q`` columns; returns the slots' own ``[n_run, h, width, d]``
        (views)."""
        kb, vb = self.keys[layer], self.values[layer]
        if self._prefill is not None:
            idx, w, _ = self._prefill
            kb[idx, :, :w] = key_states
            vb[idx, :, :w] = value_states
            return key_states, value_states
        n = key_states.shape[0]
        idx = self._write.expand(n, key_states.shape[1], key_states.shape[2], key_states.shape[3])
        kb[:n].scatter_(2, idx, key_states)
        vb[:n].scatter_(2, idx, value_states)
        return kb[:n, :, : self.width], vb[:n, :, : self.width]


def kv_layout(config: Any) -> tuple[int, int, int]:
    """``(layers, key/value heads, head dim)`` of a transformers model config."""
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    return config.num_hidden_layers, kv, getattr(config, "head_dim", None) or config.hidden_size // heads


def _zeros(shape: tuple[int, ...], like: Any) -> Any:
    """Zeros shaped ``shape`` like ``like``. On CPU from ``calloc`` (numpy): the kernel hands
    out zeroed pages as they are first touched, so the columns of buffers sized for the
    longest possible row that no row reaches take no memory; ``torch.zeros`` writes them all."""
    import numpy as np
    import torch

    if like.device.type == "cpu" and like.dtype in (torch.float32, torch.float64, torch.float16):
        return torch.from_numpy(np.zeros(shape, dtype=str(like.dtype).removeprefix("torch.")))
    return like.new_zeros(shape)


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
            prefill = self.owner._prefill
            if prefill is not None:
                return prefill[2].length if prefill[2] is not None else 0
            return self.owner.span + self.owner.width

    return _SlotLayer
