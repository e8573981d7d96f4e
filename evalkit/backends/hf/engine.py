"""THE forward call of the transformers engine, and everything it depends on.

Every model call of the HF backend goes through ``Engine.forward``: which keyword the
model takes its cache under, ``logits_to_keep``, running the output layer only on chosen
positions, the work counters, left padding and the out-of-memory batch budget live here
once. The helper modules (scoring, prefix caches, generation) receive an ``Engine`` and
use only its public methods and attributes; they never see ``HFBackend``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from evalkit.backends.api import BackendStats
from evalkit.backends.hf.batching import run_batches
from evalkit.errors import EvalkitError

T = TypeVar("T")

# Tokens per batch when batch_size=auto. On CPU throughput is flat beyond a few thousand
# tokens; on GPU we start high and halve on out-of-memory.
_AUTO_BUDGET = {"cpu": 2048, "cuda": 65536}


class Engine:
    """A loaded causal LM, its batch budget and its work counters."""

    def __init__(self, model: Any, device: Any, *, pad_id: int, max_length: int, eos_ids: set[int],
                 batch_size: int | str = "auto", max_batch_tokens: int | None = None,
                 stats: BackendStats | None = None) -> None:
        self.model = model
        self.device = device
        self.pad_id = pad_id
        self.max_length = max_length
        self.eos_ids = eos_ids
        self.stats = stats or BackendStats()
        self.batch_size = None if batch_size == "auto" else int(batch_size)
        self.max_batch_tokens = int(max_batch_tokens or _AUTO_BUDGET.get(device.type, 8192))
        if self.batch_size is not None and max_batch_tokens is None:
            self.max_batch_tokens = 1 << 62  # a fixed batch size means just that
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._logits_to_keep = "logits_to_keep" in params
        cfg = model.config
        # Packed rows use one custom mask for every layer, so sliding-window layers are
        # only exact while a sequence fits in the window.
        self._window = getattr(cfg, "sliding_window", None) if getattr(cfg, "use_sliding_window", True) else None

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def fast_path_fits(self, n_tokens: int) -> bool:
        """Whether a sequence of ``n_tokens`` can take the prefix-sharing path exactly."""
        return n_tokens <= self.max_length and (not self._window or n_tokens <= int(self._window))

    def forward(self, input_ids: Any, *, n_tokens: int, position_ids: Any, attention_mask: Any = None,
                cache: Any = None, use_cache: bool = False, keep_last: int | None = None,
                head_positions: tuple[Any, Any] | None = None) -> Any:
        """One model call, counted as ``n_tokens`` tokens of work.

        ``cache``: a transformers cache the call starts from (and extends). ``keep_last``:
        run the output layer on the last ``k`` positions only (when the model supports
        it). ``head_positions``: ``(rows, cols)`` to run the output layer on exactly those
        positions; the logits then come back as ``[1, len(rows), vocab]``.
        """
        import torch

        kwargs: dict[str, Any] = {"position_ids": position_ids, "use_cache": use_cache}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        if cache is not None:
            kwargs[self._cache_kw] = cache
        if keep_last is not None and self._logits_to_keep:
            kwargs["logits_to_keep"] = keep_last
        head = _head_on(self.model, *head_positions) if head_positions is not None else contextlib.nullcontext()
        with torch.inference_mode(), head:
            out = self.model(input_ids, **kwargs)
        if head_positions is not None and out.logits.shape[:2] != (1, len(head_positions[0])):
            raise EvalkitError(f"{type(self.model).__name__}: the output layer was not called on the selected "
                               "positions; set model.prefix_sharing=false")
        self.stats.forward_calls += 1
        self.stats.forward_tokens += n_tokens
        return out

    @staticmethod
    def cache_of(out: Any) -> Any:
        """The key/value cache a forward call returned."""
        return getattr(out, "cache", None) or getattr(out, "past_key_values", None)

    def left_pad(self, seqs: list[list[int]]) -> tuple[Any, Any, Any]:
        """``(input_ids, attention_mask, position_ids)`` of ``seqs`` left-padded to one width."""
        import torch

        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            attn[i, width - len(s) :] = 1
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), attn.to(self.device), pos.to(self.device)

    def run_batches(self, batches: Sequence[list[int]],
                    fn: Callable[[list[int]], list[T]]) -> Iterator[tuple[list[int], list[T]]]:
        """``batching.run_batches`` that halves this engine's budget on out-of-memory."""
        return run_batches(batches, fn, self._on_oom)

    def _on_oom(self) -> None:
        self.max_batch_tokens = max(1, self.max_batch_tokens // 2)
        if self.batch_size:
            self.batch_size = max(1, self.batch_size // 2)


@contextlib.contextmanager
def _head_on(model: Any, rows: Any, cols: Any) -> Iterator[None]:
    """Run the output layer only on hidden states ``[rows, cols]`` during the model call.

    The vocabulary projection of a position costs a fifth of a small model's compute and
    a 49k-float logit row each; scoring needs a few scattered positions per row, which
    ``logits_to_keep`` (one set of columns for all rows) cannot express. A pre-hook on
    the output layer swaps its input for exactly those positions, so the model's own head
    code (soft-capping, scaling) still runs; the logits come back as ``[1, n, vocab]``.
    """
    head = model.get_output_embeddings()

    def pick(_module: Any, args: tuple) -> tuple:
        hidden = args[0]
        return (hidden[rows, cols][None], *args[1:])

    handle = head.register_forward_pre_hook(pick)
    try:
        yield
    finally:
        handle.remove()
