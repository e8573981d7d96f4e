"""Attention of a slot call over the prefixes in flight and the slots' own tokens.

With standard attention every row would need its prefix's keys/values copied into its
own cache and read once per row per step: for 40 rows after a 1,000-token few-shot
prefix, 40 reads of the same 1,000 tokens per layer per step, more memory traffic than
the model's weights. Here the queries of all slots continuing one prefix meet its keys
(read in place, ``PrefixCache.layers``) in one matmul per layer, and their own tokens in
a batched one; one softmax runs over both score blocks, so the result is the same
attention (up to float rounding). Prefilling rows after a prefix works the same way
(their queries meet the prefix once, not a copy of it per row). It is registered with
transformers as ``evalkit_slots`` and switched on only for the slot calls (``slot_attention``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

NAME = "evalkit_slots"
_active: list[Any] = []  # the SlotCache of the decoding step in progress


def _attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
               dropout: float = 0.0, softcap: float | None = None, **_: Any) -> tuple[Any, None]:
    """``query [S, Hq, Q, d]`` (``Q`` = 1 decoding, a prefill's own width); ``key``/``value``:
    the rows' own ``[S, Hkv, W, d]``; ``attention_mask [S, 1, Q, P + W]`` (``P`` shared
    columns first: the prefilling rows' prefix; decoding, ``cache.single``'s, or with
    ``cache.segments`` each slot's own prefix padded to the longest). Returns ``[S, Q, Hq, d]``."""
    import torch

    cache = _active[-1]
    if cache.prefilling:
        return _prefill_attention(cache, module, query, key, value, attention_mask, scaling, softcap)
    s, hq, q_len, d = query.shape
    hkv = key.shape[1]
    g = hq // hkv
    q = query.reshape(s, hkv, g * q_len, d)
    scale = scaling if scaling is not None else d**-0.5
    own = torch.matmul(q, key.transpose(2, 3))  # [S, Hkv, g*Q, W]
    p = attention_mask.shape[-1] - key.shape[2]  # shared columns of this call
    segments = cache.segments if p else None
    if segments is not None:
        # Several prefixes in flight: each slot meets only its own prefix's keys, its
        # scores padded to the longest prefix (the mask hides the padding).
        bank = q.new_zeros((s, hkv, g * q_len, p))
        for prefix, rows in segments:
            bk = prefix.layers[module.layer_idx][0]
            bank[rows, :, :, : prefix.length] = torch.matmul(q[rows], bk[0].transpose(1, 2))
        scores = torch.cat([bank, own], dim=-1)
    elif p:
        bk, bv = cache.bank_of(module.layer_idx)
        # All rows' queries against the shared columns at once: [Hkv, S*g*Q, d] @ [Hkv, d, P].
        qb = q.transpose(0, 1).reshape(hkv, s * g * q_len, d)
        bank = torch.matmul(qb, bk[0].transpose(1, 2)).view(hkv, s, g * q_len, p).transpose(0, 1)
        scores = torch.cat([bank, own], dim=-1)
    else:
        scores = own
    scores = scores * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    cols = scores.shape[-1]
    # The mask [S, 1, Q, P + W] broadcasts over the kv heads and the g query heads of each.
    scores = (scores.view(s, hkv, g, q_len, cols) + attention_mask[:, :, None]).view(s, hkv, g * q_len, cols)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(probs[..., p:], value)  # [S, Hkv, g*Q, d]
    if segments is not None:
        for prefix, rows in segments:
            bv = prefix.layers[module.layer_idx][1]
            out.index_add_(0, rows, torch.matmul(probs[rows, :, :, : prefix.length], bv[0]))
    elif p:
        pb = probs[..., :p].transpose(0, 1).reshape(hkv, s * g * q_len, p)
        out = out + torch.matmul(pb, bv[0]).view(hkv, s, g * q_len, d).transpose(0, 1)
    return out.reshape(s, hq, q_len, d).transpose(1, 2).contiguous(), None


def _prefill_attention(cache: Any, module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                       scaling: float | None, softcap: float | None) -> tuple[Any, None]:
    """A prefill's attention: its rows' own tokens after their one shared prefix, through
    the fused kernel (``[S, Hq, Q, d]`` queries against the prefix, expanded, and the own
    keys). A prefill runs once per row, so the prefix's copy per row is small next to
    its scores; the fused kernel never holds those scores whole."""
    import torch

    if softcap is not None:  # the fused kernel has no soft-capping; the generic path does
        raise NotImplementedError("soft-capped attention in a prefill")
    s = query.shape[0]
    p = attention_mask.shape[-1] - key.shape[2]
    if p:
        bk, bv = cache.bank_of(module.layer_idx)
        key = torch.cat([bk.expand(s, -1, -1, -1), key], dim=2)
        value = torch.cat([bv.expand(s, -1, -1, -1), value], dim=2)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                           scale=scaling, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


@functools.lru_cache(maxsize=None)
def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, _attention)


@contextlib.contextmanager
def slot_attention(model: Any, cache: Any) -> Iterator[None]:
    """Run the model's attention layers with ``_attention`` over ``cache`` meanwhile."""
    _register()
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "config")}
    saved = {k: c._attn_implementation_internal for k, c in configs.items()}
    _active.append(cache)
    try:
        for c in configs.values():
            c._attn_implementation_internal = NAME
        yield
    finally:
        _active.pop()
        for k, c in configs.items():
            c._attn_implementation_internal = saved[k]
