"""Batch planning: length-sorted batches under a token budget, shrunk on out-of-memory; prefill calls split by cost."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def plan_batches(lengths: Sequence[int], max_tokens: int, max_batch: int | None = None) -> list[list[int]]:
    """Group indices into batches, longest first, so ``batch_len * padded_len <= max_tokens``.

    Longest-first puts the most memory-hungry batch at the start, so an out-of-memory
    error shows up at once rather than an hour in.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        new_max = max(cur_max, lengths[i])
        full = max_batch is not None and len(cur) >= max_batch
        if cur and (full or new_max * (len(cur) + 1) > max_tokens):
            batches.append(cur)
            cur, new_max = [], lengths[i]
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


def first_call(widths: Sequence[int], call_cost: float, fits: Callable[[int, int], bool]) -> int:
    """How many of the rows waiting with ``widths`` (own tokens, in queue order) the next
    padded call takes: the first call of the split of the rows into consecutive calls
    that runs the fewest positions, padding included, each call counting ``call_cost``
    positions more (its fixed cost, the read of the weights). ``fits(rows, width)``:
    whether a call of ``rows`` rows padded to ``width`` is allowed (one row always is).
    Greedy rules either pad a long row's call with short rows or cut calls too small to
    fill the machine; the split costs O(rows^2) steps, nothing next to a forward call."""
    m = len(widths)
    best = [0.0] * (m + 1)  # best[i]: the cost of rows i.. in their best split
    end = [m] * (m + 1)  # end[i]: where the first call of that split ends
    for i in range(m - 1, -1, -1):
        best[i], width = float("inf"), 0
        for j in range(i + 1, m + 1):
            width = max(width, widths[j - 1])
            if j > i + 1 and not fits(j - i, width):
                break
            cost = call_cost + (j - i) * width + best[j]
            if cost <= best[i]:  # on a tie the longer call: its rows start decoding sooner
                best[i], end[i] = cost, j
    return end[0] if m else 0


def is_oom(err: BaseException) -> bool:
    import torch

    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def run_batches(
    batches: Sequence[list[int]], fn: Callable[[list[int]], list[T]], on_oom: Callable[[], None] | None = None
) -> Iterator[tuple[list[int], list[T]]]:
    """Run ``fn`` on each batch; on out-of-memory, split the batch in two and retry.

    Yields ``(batch_indices, results)``. A single item that does not fit re-raises.
    """
    queue = deque(batches)
    while queue:
        batch = queue.popleft()
        try:
            yield batch, fn(batch)
        except Exception as err:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not is_oom(err) or len(batch) == 1:
                raise
            _free_memory()
            half = len(batch) // 2
            log.warning("out of memory on a batch of %d; retrying as %d + %d", len(batch), half, len(batch) - half)
            if on_oom:
                on_oom()
            queue.appendleft(batch[half:])
            queue.appendleft(batch[:half])


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
