"""Key/value caches of shared prefixes, and scoring only the positions that are needed.

A prefix's cache is computed once (batch of one) and never modified: each forward pass
that uses it gets a fresh ``DynamicCache`` built from its tensors (expanded to the
batch), since a cache object is extended in place by the model.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.backends.hf.prefix_tree import PrefixNode

if TYPE_CHECKING:
    from evalkit.backends.hf.engine import Engine


@dataclass
class PrefixCache:
    """Per-layer ``(keys, values)`` of the first ``length`` tokens of a sequence (batch 1)."""

    layers: list[tuple[Any, Any]]
    length: int

    def for_batch(self, config: Any, batch: int) -> Any:
        """A new ``DynamicCache`` holding this prefix for ``batch`` rows."""
        from transformers import DynamicCache

        data = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in self.layers]
        return DynamicCache(ddp_cache_data=data, config=config)

    def for_decoding(self, config: Any, batch: int, capacity: int) -> Any:
        """A cache holding this prefix for ``batch`` rows that grows in place to ``capacity``
        tokens (see ``decoding_cache``)."""
        cache = decoding_cache(config, capacity)
        cache.layers = [preallocated_layer(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1), capacity)
                        for k, v in self.layers]
        return cache

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.layers)


@functools.lru_cache(maxsize=None)
def _preallocated_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class _Layer(DynamicLayer):
        """A cache layer over buffers of fixed capacity: appending writes in place, and
        ``keys``/``values`` are views of the filled part."""

        def __init__(self, keys: Any, values: Any, capacity: int) -> None:
            super().__init__()
            self._capacity = capacity
            self._n = 0
            if keys is not None:
                self._allocate(keys, values)
                n = keys.shape[2]
                self._k[:, :, :n] = keys
                self._v[:, :, :n] = values
                self._n = n
                self._views()

        def _allocate(self, keys: Any, values: Any) -> None:
            b, h, n, _ = keys.shape
            self._k = keys.new_empty((b, h, max(self._capacity, n), keys.shape[-1]))
            self._v = values.new_empty((b, h, max(self._capacity, n), values.shape[-1]))
            self.device = keys.device
            self.is_initialized = True

        def _views(self) -> None:
            self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self._allocate(key_states, value_states)
            n = key_states.shape[-2]
            if self._n + n > self._k.shape[2]:  # past the planned capacity: grow (not expected)
                import torch

                self._k = torch.cat([self._k, torch.empty_like(self._k)], dim=2)
                self._v = torch.cat([self._v, torch.empty_like(self._v)], dim=2)
                return self.update(key_states, value_states)
            self._k[:, :, self._n : self._n + n] = key_states
            self._v[:, :, self._n : self._n + n] = value_states
            self._n += n
            self._views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self._n if self.is_initialized else 0

        def batch_select_indices(self, indices: Any) -> None:
            self._k, self._v = self._k[indices], self._v[indices]
            self._views()

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError("crop takes a negative number of tokens to remove")
            self._n -= abs(tokens_to_remove)
            self._views()

    return _Layer


def preallocated_layer(keys: Any, values: Any, capacity: int) -> Any:
    """A transformers cache layer of fixed capacity, holding ``keys``/``values`` (or empty
    when they are None, allocated at its first update). Its class subclasses
    transformers' ``DynamicLayer``, so it is built on first use."""
    return _preallocated_layer_class()(keys, values, capacity)


def decoding_cache(config: Any, capacity: int) -> Any:
    """An empty cache whose layers grow in place up to ``capacity`` tokens.

    ``DynamicCache`` appends by concatenation, copying every row's whole cache at each
    decoding step: for a batch of 24 rows of 600 tokens that is hundreds of MB per step,
    more than the step's own compute on CPU.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    cache.layers = [preallocated_layer(None, None, capacity) for _ in cache.layers]
    return cache


def cache_layers(cache: Any) -> list[tuple[Any, Any]]:
    """``(keys, values)`` of every layer of a transformers cache."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def extend_prefix(engine: "Engine", parent: PrefixCache | None, tokens: Sequence[int]) -> PrefixCache:
    """The cache of ``parent``'s tokens followed by ``tokens`` (one forward pass)."""
    import torch

    start = parent.length if parent else 0
    ids = torch.tensor([list(tokens)], dtype=torch.long, device=engine.device)
    pos = torch.arange(start, start + len(tokens), device=engine.device)[None]
    cache = parent.for_batch(engine.model.config, 1) if parent is not None else None
    out = engine.forward(ids, n_tokens=len(tokens), position_ids=pos, cache=cache, use_cache=True, keep_last=1)
    return PrefixCache(cache_layers(engine.cache_of(out)), start + len(tokens))


def walk_prefixes(engine: "Engine", root: PrefixNode,
                  contexts: Sequence[Sequence[int]]) -> Iterator[tuple[PrefixNode, PrefixCache | None]]:
    """Each node of the trie (parents first) with its prefix cache (None at the root).

    A node's cache extends its parent's by one forward pass over the tokens in between;
    caches are dropped as soon as no later node needs them, so at most one chain of
    nested prefixes is held at a time.
    """
    caches: dict[int, PrefixCache] = {}
    for node in root.walk():
        cache = None
        if node.length:
            parent = caches.get(id(node.parent))
            start = parent.length if parent else 0
            cache = extend_prefix(engine, parent, contexts[node.anchor][start : node.length])
            caches[id(node)] = cache
            # Tokens that every other context below would have recomputed.
            extra = engine.stats.extra
            extra["shared_prefixes"] = extra.get("shared_prefixes", 0) + 1
            extra["prefix_tokens_reused"] = extra.get("prefix_tokens_reused", 0) + (node.n_items() - 1) * (node.length - start)
        yield node, cache
        if not node.children:
            _release(node, caches)


def _release(node: PrefixNode | None, caches: dict[int, PrefixCache]) -> None:
    """Drop this leaf's cache, and each ancestor's whose last sub-trie just ended."""
    while node is not None:
        caches.pop(id(node), None)
        parent = node.parent
        if parent is None or parent.children[-1] is not node:
            return
        node = parent
