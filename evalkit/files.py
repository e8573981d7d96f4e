"""Atomic file writes and JSON/JSONL helpers.

Every file evalkit writes goes through here: written to a temporary file in the same
folder, flushed and fsynced, then renamed over the target, so a crash or Ctrl-C leaves
either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (same-folder temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 whatever the umask; a shared run folder must stay readable
        # by whoever the user's umask lets read it, as with any file they write.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def current_umask() -> int:
    """The process umask (read by setting it and putting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> str:
    """Stable, readable JSON (keys sorted; numpy scalars and paths converted)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_default) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty JSON atomically."""
    atomic_write_text(path, to_json(obj))


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """Write one JSON object per line atomically."""
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True, default=_default) for r in rows]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Every JSON line of ``path``; a damaged line (cut off by a crash, edited) is a one-line error."""
    from evalkit.errors import DataError

    rows, n = [], 0
    with open(path, encoding="utf-8") as f:
        try:
            for line in f:
                n += 1
                if line.strip():
                    rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            what = "is cut off or not JSON" if isinstance(e, json.JSONDecodeError) else "is not UTF-8"
            n += isinstance(e, UnicodeDecodeError)  # the failing line was never counted
            raise DataError(f"{path}:{n}: line {what}; the file is damaged (rerun the command that wrote it: "
                            "a run folder is rewritten from its request cache without recomputing)") from None
    return rows


def _default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
