"""Run many programs in parallel, one sandbox each, across the machine's cores."""

from __future__ import annotations

import queue
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from typing import Any

from tqdm import tqdm

from evalkit.sandbox import uids
from evalkit.sandbox.isolation import Isolation, choose
from evalkit.sandbox.process import Execution, run_program
from evalkit.sandbox.settings import SandboxSettings


def run_programs(programs: Sequence[str], settings: SandboxSettings, isolation: Isolation | None = None,
                 progress: bool = False) -> tuple[list[Execution], dict[str, Any]]:
    """Execute every program (identical ones once) with ``settings.workers`` in parallel.

    Returns one ``Execution`` per program, in order, and run statistics (unique programs,
    wall seconds, programs per second, outcome counts). Threads only wait: the work is in
    the sandboxed child processes, so each worker keeps one core busy. Each worker owns a
    sandbox uid (as root, leased for the whole batch), so one program's fork bomb never
    counts against another's.
    """
    iso = isolation or choose(settings)
    with uids.lease(settings.uid_base, settings.workers) if iso.as_root else nullcontext([None] * settings.workers) as held:
        return _run(programs, settings, iso, held, progress)


def _run(programs: Sequence[str], settings: SandboxSettings, iso: Isolation, held: list[int | None],
         progress: bool) -> tuple[list[Execution], dict[str, Any]]:
    unique = list(dict.fromkeys(programs))
    slots: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    for uid in held:
        slots.put(uid)

    def job(source: str) -> Execution:
        uid = slots.get()
        t0 = time.perf_counter()
        try:
            return run_program(source, iso, settings.limits, uid, settings.uid_base, settings.stderr_chars)
        except Exception as e:  # noqa: BLE001 - the harness failed on this program: record it, go on
            message = " ".join(f"{type(e).__name__}: {e}".split())[:500]
            return Execution("error", f"the sandbox could not run this program: {message}", "",
                             time.perf_counter() - t0, None)
        finally:
            slots.put(uid)

    done: dict[str, Execution] = {}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="sandbox") as pool, \
            tqdm(total=len(unique), desc="executing programs", unit="prog", disable=not progress,
                 dynamic_ncols=True, mininterval=1.0, file=sys.stderr) as bar:
        futures = {pool.submit(job, src): src for src in unique}
        try:
            for fut in as_completed(futures):
                done[futures[fut]] = fut.result()
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # running programs end within their wall limit
            raise
    seconds = time.perf_counter() - t0
    results = [done[src] for src in programs]
    stats = {
        "programs": len(programs),
        "unique_programs": len(unique),
        "workers": settings.workers,
        "uids": [u for u in held if u is not None],
        "seconds": round(seconds, 3),
        "programs_per_second": round(len(unique) / seconds, 2) if seconds > 0 else None,
        "outcomes": dict(Counter(r.outcome for r in results)),
    }
    return results, stats
