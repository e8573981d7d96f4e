"""Attention of a decoding step over the shared-prefix bank and the slots' own tokens.

With standard attention every row would need its prefix's keys/values copied into its
own cache and read once per row per step: for 40 rows after a 1,000-token few-shot
prefix, 40 reads of the same 1,000 tokens per layer per step, more memory traffic than
the model's weights. Here the queries of all slots meet the bank (the prefixes in
flight, ``SlotCache.bank_keys``) in one matmul per layer, and their own tokens in a
batched one; one softmax runs over both score blocks, so the result is the same
attention (up to float rounding). It is registered with transformers as
``evalkit_slots`` and switched on only for decoding steps (``slot_attention``).
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
    """``query [S, Hq, 1, d]``; ``key``/``value``: the slots' own ``[S, Hkv, W, d]``;
    ``attention_mask [S, 1, 1, P + W]`` (``P`` bank columns first: the whole bank, or with
    ``cache.segments`` each slot's own prefix padded to the longest). Returns ``[S, 1, Hq, d]``."""
    import torch

    cache = _active[-1]
    s, hq, q_len, d = query.shape
    hkv = key.shape[1]
    g = hq // hkv
    q = query.reshape(s, hkv, g * q_len, d)
    scale = scaling if scaling is not None else d**-0.5
    own = torch.matmul(q, key.transpose(2, 3))  # [S, Hkv, g, W]
    p = attention_mask.shape[-1] - key.shape[2]  # bank columns of this step
    segments = cache.segments if p else None
    if segments is not None:
        # Several prefixes in flight: each slot meets only its own prefix's keys, its
        # scores padded to the longest prefix (the mask hides the padding).
        bk, bv = cache.bank_keys[module.layer_idx][0], cache.bank_values[module.layer_idx][0]
        bank = q.new_zeros((s, hkv, g * q_len, p))
        for start, length, rows in segments:
            bank[rows, :, :, :length] = torch.matmul(q[rows], bk[:, start : start + length].transpose(1, 2))
        scores = torch.cat([bank, own], dim=-1)
    elif p:
        bk, bv = cache.bank_keys[module.layer_idx], cache.bank_values[module.layer_idx]
        # All slots' queries against the bank at once: [Hkv, S*g, d] @ [Hkv, d, P].
        qb = q.transpose(0, 1).reshape(hkv, s * g * q_len, d)
        bank = torch.matmul(qb, bk[0].transpose(1, 2)).view(hkv, s, g * q_len, p).transpose(0, 1)
        scores = torch.cat([bank, own], dim=-1)
    else:
        scores = own
    scores = scores * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    scores = scores + attention_mask  # [S, 1, 1, P + W] broadcasts over heads
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(probs[..., p:], value)  # [S, Hkv, g, d]
    if segments is not None:
        for start, length, rows in segments:
            out.index_add_(0, rows, torch.matmul(probs[rows, :, :, :length], bv[:, start : start + length]))
    elif p:
        pb = probs[..., :p].transpose(0, 1).reshape(hkv, s * g * q_len, p)
        out = out + torch.matmul(pb, bv[0]).view(hkv, s, g * q_len, d).transpose(0, 1)
    return out.reshape(s, hq, q_len, d).transpose(1, 2).contiguous(), None


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
