"""Load a task's split from the Hugging Face hub or a local mirror, as canonical documents.

A spec maps each source's raw rows to the same canonical fields (``source.<hub|local>.fields``:
field name -> Jinja expression over the raw row), so prompts and metrics are written once
whatever the source. ``id`` and ``group`` are the two fields evalkit itself reads: the
item's stable identity (compare matches runs on it) and its subset (MMLU subject...).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from evalkit.errors import DataError
from evalkit.tasks.readers import LocalFormat, RawRow, read_file, resolve_files
from evalkit.tasks.templating import TemplateError, evaluate

log = logging.getLogger(__name__)

Doc = dict[str, Any]  # canonical fields, plus "_where" (file:line or hub:split#i)

_HUB = None  # sentinel meaning "load from the Hugging Face hub"


def load_docs(spec: "TaskSpec", role: str, data_root: Path | None) -> list[Doc]:  # noqa: F821
    """Documents of split ``role`` ("eval" or "fewshot") as canonical dicts, in source order."""
    if data_root is _HUB:
        source = spec.source.get("hub")
        if not source:
            raise DataError(f"task {spec.name}: no hub source in its spec; set data_root to a local mirror")
        rows = _hub_rows(spec.name, source, role)
    else:
        source = spec.source.get("local")
        if not source:
            raise DataError(f"task {spec.name}: no local source in its spec; set data_root=hub")
        rows = _local_rows(spec.name, source, role, Path(data_root))
    return [_to_doc(spec.name, source["fields"], row, i) for i, row in enumerate(rows)]


def fingerprint_docs(docs: list[Doc]) -> str:
    """Hash of the canonical documents: tells whether two runs saw the same data."""
    h = hashlib.sha256()
    for d in docs:
        h.update(json.dumps({k: v for k, v in d.items() if not k.startswith("_")}, sort_keys=True,
                            ensure_ascii=False, default=str).encode())
    return h.hexdigest()[:16]


def _split_of(task: str, source: dict[str, Any], role: str) -> Any:
    splits = source.get("splits", {})
    if role not in splits:
        raise DataError(f"task {task}: its source has no {role!r} split (splits: {', '.join(splits) or 'none'})")
    return splits[role]


def _hub_rows(task: str, source: dict[str, Any], role: str) -> list[RawRow]:
    import datasets

    split = _split_of(task, source, role)
    path, name = source["path"], source.get("name")
    try:
        ds = datasets.load_dataset(path, name, split=split, revision=source.get("revision"))
    except Exception as e:  # noqa: BLE001 - datasets raises many types for "cannot reach the hub"
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(
            f"task {task}: could not load {path}{'/' + name if name else ''} split {split!r} from the hub "
            f"({first}); offline? set data_root to a local mirror (e.g. data_root=../shared/data)"
        ) from e
    where = f"hub:{path}{'/' + name if name else ''}:{split}"
    return [RawRow(dict(row), where, i) for i, row in enumerate(ds)]


def _local_rows(task: str, source: dict[str, Any], role: str, root: Path) -> list[RawRow]:
    patterns = _split_of(task, source, role)
    fmt = LocalFormat(**{k: v for k, v in source.items() if k in LocalFormat.__dataclass_fields__})
    rows: list[RawRow] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        for path in resolve_files(root, pattern):
            file_rows = list(read_file(path, fmt))
            for i, r in enumerate(file_rows):
                r.data.setdefault("_index", i)
                r.data.setdefault("_file", path.name)
            rows.extend(file_rows)
    return rows


def _to_doc(task: str, fields: dict[str, str], row: RawRow, index: int) -> Doc:
    variables = {"_index": index, **row.data, "row": row.data}
    doc: Doc = {}
    for name, expr in fields.items():
        try:
            doc[name] = evaluate(expr, variables)
        except TemplateError as e:
            raise DataError(f"{row.where}: field {name!r} ({expr!r}): {e}") from None
    doc.setdefault("id", str(index))
    doc["id"] = str(doc["id"])
    doc["_where"] = row.where
    return doc
