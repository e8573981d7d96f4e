"""Readers for the local data formats benchmarks ship in (jsonl, json, csv/tsv, txt, .gz).

Each row comes back with where it came from (file and line), so a malformed row fails
with the file, line and field named. ``datasets`` is used for the hub; for local files we
read directly: the files are small, and ``datasets``' JSON builder reports a bad row as
an Arrow cast error without its line.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import DataError


@dataclass
class LocalFormat:
    """How to read one local split (options from the task spec's ``source.local``)."""

    format: str | None = None  # jsonl | json | csv | tsv | txt; default: from the extension
    csv_columns: list[str] | None = None  # header-less CSV (e.g. MMLU)
    records_key: str | None = None  # JSON file holding a list under this key (BIG-bench)
    path_fields: dict[str, str] = field(default_factory=dict)  # field -> regex with one group on the path
    text_field: str = "text"  # column name for txt lines
    line_files: dict[str, str] = field(default_factory=dict)  # field -> sibling file with one value per line
    # wide -> long: one row per column, {var: column name, value: cell, + the kept columns}
    # (AGIEval's few-shot CSV has one column per subset)
    melt: dict[str, Any] | None = None


@dataclass
class RawRow:
    data: dict[str, Any]
    file: str
    line: int  # 1-based line (jsonl/csv/txt) or record index (json)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def resolve_files(root: Path, pattern: str) -> list[Path]:
    """Files under ``root`` matching ``pattern`` (a glob), sorted; error if none."""
    files = sorted(Path(p) for p in glob.glob(str(root / pattern)))
    if not files:
        raise DataError(
            f"no data file matches {pattern!r} under data_root={root} "
            "(check data_root, or set data_root=hub to load from the Hugging Face hub)"
        )
    return files


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig", newline="")


def _kind(path: Path, fmt: LocalFormat) -> str:
    if fmt.format:
        return fmt.format
    suffixes = [s for s in path.suffixes if s != ".gz"]
    ext = suffixes[-1].lstrip(".") if suffixes else ""
    return {"jsonl": "jsonl", "json": "json", "csv": "csv", "tsv": "tsv", "txt": "txt"}.get(ext, "jsonl")


def read_file(path: Path, fmt: LocalFormat) -> Iterator[RawRow]:
    """Yield the rows of one file, each with its location.

    A file that is not UTF-8 or holds no row is an error naming the file (and the line),
    never an empty split that would "succeed" with n=0.
    """
    kind = _kind(path, fmt)
    extra = _path_fields(path, fmt)
    line_values = {name: _read_lines(path.parent / fname) for name, fname in fmt.line_files.items()}
    n_rows = 0
    try:
        with _open_text(path) as f:
            for i, (line, data) in enumerate(_rows(f, kind, path, fmt)):
                for name, values in line_values.items():
                    if i >= len(values):
                        raise DataError(f"{path}:{line}: no value for {name!r} in {fmt.line_files[name]} (it has {len(values)} lines)")
                    data[name] = values[i]
                for row in _melt(data, fmt.melt) if fmt.melt else [data]:
                    row.update(extra)
                    n_rows += 1
                    yield RawRow(row, str(path), line)
    except UnicodeDecodeError:
        raise DataError(encoding_problem(path)) from None
    if n_rows == 0:
        raise DataError(f"{path}: no rows (the file is empty, blank or only a header); "
                        "fill it or point the task at the right file")


def _raw_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read()


def encoding_problem(path: Path) -> str:
    """Where and how ``path`` fails to be UTF-8, as one line with the fix."""
    data = _raw_bytes(path)
    fix = f"convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8 {path.name})"
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) >= 4 and (data[1:4:2] == b"\0\0" or data[0:4:2] == b"\0\0")):
        return f"{path}: the file is UTF-16, not UTF-8; {fix}"
    for n, line in enumerate(data.split(b"\n"), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            return (f"{path}:{n}: invalid UTF-8 (byte 0x{line[e.start]:02x} at column {e.start + 1}); "
                    f"re-save the file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8 {path.name})")
    return f"{path}: invalid UTF-8; {fix}"


def _melt(data: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    keep = list(spec.get("keep") or [])
    var, value = spec.get("var", "column"), spec.get("value", "value")
    base = {k: data[k] for k in keep if k in data}
    return [{**base, var: col, value: cell} for col, cell in data.items() if col not in keep]


def _rows(f: io.TextIOBase, kind: str, path: Path, fmt: LocalFormat) -> Iterator[tuple[int, dict[str, Any]]]:
    if kind == "jsonl":
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: invalid JSON ({e.msg} at column {e.colno})") from e
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            yield n, row
    elif kind == "json":
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
        records = doc[fmt.records_key] if fmt.records_key else doc
        if not isinstance(records, list):
            raise DataError(f"{path}: expected a list of records{' under ' + repr(fmt.records_key) if fmt.records_key else ''}")
        for n, row in enumerate(records, 1):
            yield n, row if isinstance(row, dict) else {"value": row}
    elif kind in ("csv", "tsv"):
        reader = csv.reader(f, delimiter="\t" if kind == "tsv" else ",")
        header = fmt.csv_columns
        for n, cells in enumerate(reader, 1):
            if header is None:
                header = cells
                continue
            if not cells:
                continue
            if len(cells) != len(header):
                raise DataError(f"{path}:{n}: expected {len(header)} columns ({', '.join(header)}), found {len(cells)}")
            yield n, dict(zip(header, cells))
    elif kind == "txt":
        for n, line in enumerate(f, 1):
            text = line.rstrip("\n")
            if text.strip():
                yield n, {fmt.text_field: text}
    else:
        raise DataError(f"{path}: unknown format {kind!r} (use jsonl, json, csv, tsv or txt)")


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise DataError(f"{path} is missing")
    with _open_text(path) as f:
        return [line.strip() for line in f if line.strip()]


def _path_fields(path: Path, fmt: LocalFormat) -> dict[str, str]:
    out = {}
    for name, pattern in fmt.path_fields.items():
        m = re.search(pattern, path.as_posix())
        if not m:
            raise DataError(f"{path}: path does not match {pattern!r} (needed for field {name!r})")
        out[name] = m.group(1)
    return out
