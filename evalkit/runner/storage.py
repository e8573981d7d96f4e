"""Storage faults (full disk, quota, read-only or unwritable folder) as one-line errors.

Every file of a run folder is written atomically and every answer is committed as it
comes, so when a write fails what is on disk is still whole: the run can be resumed by
the same command once the fault is fixed. This module only turns the fault into a line
that says so, instead of a traceback from deep inside sqlite or ``os``.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evalkit.errors import EvalkitError

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


class StorageError(EvalkitError):
    """A run folder could not be written."""


def describe(exc: BaseException, where: Path | str | None = None) -> str | None:
    """The one-line explanation of a storage fault, or None when ``exc`` is not one."""
    target = getattr(exc, "filename", None) or where or "the run folder"
    resume = "then run the same command again: everything answered so far is kept and only the rest is computed"
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return f"no space left while writing {target} ({exc.strerror}); free space or set output_dir elsewhere, {resume}"
    if isinstance(exc, OSError) and exc.errno in _DENIED:
        return (f"cannot write {target} ({exc.strerror}); make it writable or set output_dir to a writable "
                f"folder, {resume}")
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "full" in text:
            return f"no space left while writing {where or 'the request cache'} ({text}); free space, {resume}"
        if "readonly" in text or "unable to open" in text or "disk I/O" in text:
            return f"cannot write {where or 'the request cache'} ({text}); check the folder's permissions and space, {resume}"
    return None


@contextmanager
def storage_errors(where: Path | str | None = None) -> Iterator[None]:
    """Turn storage faults raised inside the block into ``StorageError`` (one line)."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as e:
        line = describe(e, where)
        if line is None:
            raise
        raise StorageError(line) from None
