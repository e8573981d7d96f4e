"""Find training checkpoints in a folder and tell which ones are completely written.

A checkpoint is a sub-folder in Hugging Face format (``config.json`` plus weights:
``*.safetensors`` / ``*.bin``, every shard its index names). Its step comes from
``trainer_state.json`` (``global_step``, what the HF Trainer writes) or else from the
last number in its name (``checkpoint-1000``, ``step_2000``, ``global_step300``).

A trainer writes a checkpoint over seconds to minutes, so a folder is only handed out
when it is complete: with ``marker`` set, when that file exists (a trainer that writes
one last); otherwise when every required file is present, no temporary file is left
and the names, sizes and modification times are the same in two polls in a row (or no
file changed for ``settle_s`` seconds, so finished checkpoints are taken at once on start).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

_WEIGHTS = ("*.safetensors", "*.bin")
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
# Files a writer leaves while it is still busy (atomic-rename temporaries, partial downloads).
_BUSY = re.compile(r"(\.tmp|\.part|\.incomplete|\.lock|~)$|^\.tmp|^tmp")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder and its training step."""

    path: Path
    step: int

    @property
    def name(self) -> str:
        return self.path.name


def step_of(path: str | Path) -> int | None:
    """The training step of a checkpoint folder: ``trainer_state.json``'s ``global_step``,
    else the last number in the folder's name; None when neither says."""
    path = Path(path)
    state = path / "trainer_state.json"
    if state.is_file():
        try:
            step = json.loads(state.read_text(encoding="utf-8")).get("global_step")
            if isinstance(step, int) and not isinstance(step, bool):
                return step
        except (OSError, ValueError):
            pass  # being written: fall back to the name
    numbers = re.findall(r"\d+", path.name)
    return int(numbers[-1]) if numbers else None


def missing_files(path: Path) -> list[str]:
    """Required files a HF checkpoint folder lacks (empty when it has them all)."""
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    for index in _INDEXES:
        if (path / index).is_file():
            try:
                shards = set(json.loads((path / index).read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError):
                return [*missing, f"{index} (unreadable)"]
            return missing + sorted(s for s in shards if not (path / s).is_file())
    if not any(f for pattern in _WEIGHTS for f in path.glob(pattern)):
        missing.append("weights (*.safetensors or *.bin)")
    return missing


def signature(path: Path) -> tuple:
    """Names, sizes and modification times of every file under ``path``: equal in two
    polls means nothing was written in between."""
    out = []
    for f in sorted(path.rglob("*")):
        try:
            st = f.stat()
        except FileNotFoundError:  # renamed away between listing and stat
            continue
        if f.is_file():
            out.append((str(f.relative_to(path)), st.st_size, st.st_mtime_ns))
    return tuple(out)


class CheckpointScanner:
    """Polls a folder; ``ready()`` returns the complete checkpoints, in step order."""

    def __init__(self, root: str | Path, marker: str | None = None, settle_s: float = 60.0):
        self.root = Path(root)
        self.marker = marker
        self.settle_s = settle_s
        self._seen: dict[Path, tuple] = {}  # signature at the previous poll

    def ready(self) -> list[Checkpoint]:
        """Every checkpoint that is complete now (see the module notes), sorted by step."""
        out = []
        for path in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if self._complete(path):
                step = step_of(path)
                if step is not None:
                    out.append(Checkpoint(path.resolve(), step))
        return sorted(out, key=lambda c: (c.step, c.name))

    def _complete(self, path: Path) -> bool:
        if self.marker:
            return (path / self.marker).exists() and not missing_files(path)
        if missing_files(path):
            return False
        sig = signature(path)
        if any(_BUSY.search(Path(name).name) for name, _, _ in sig):
            self._seen.pop(path, None)
            return False
        stable = self._seen.get(path) == sig
        self._seen[path] = sig
        newest = max((mtime for _, _, mtime in sig), default=0) / 1e9
        return stable or time.time() - newest >= self.settle_s
