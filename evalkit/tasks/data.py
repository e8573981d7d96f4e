"""Load a task's split from the Hugging Face hub or a local mirror, as canonical documents.

A spec maps each source's raw rows to the same canonical fields (``source.<hub|local>.fields``:
field name -> Jinja expression over the raw row), so prompts and metrics are written once
whatever the source. ``id`` and ``group`` are the two fields evalkit itself reads: the
item's stable identity (compare matches runs on it) and its subset (MMLU subject...).

A split (``source.<kind>.splits.<role>``) is a file pattern / hub split name, or a list of
entries, each a pattern or a mapping ``{files|split|url: ..., <source keys to override>}``:
one split may gather rows from several files that need different options or field
mappings (AGIEval's few-shot CSV, read once per subset). Source keys that work on raw rows:

* ``filter``: expression over the raw row; rows where it is false are skipped;
* ``texts``: ``{name: path template}``, a text file per row (rendered with the row's
  variables, read once) exposed to ``fields`` as ``name`` (BBH's per-task CoT prompts);
* hub ``groups``: one hub config per group, ``path``/``name`` being templates over ``group``
  (BBH's 27 configs, AGIEval's per-subset datasets); each row gets that ``group``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from evalkit.errors import DataError
from evalkit.tasks.readers import LocalFormat, RawRow, read_file, resolve_files
from evalkit.tasks.templating import TemplateError, evaluate, render
from evalkit.tasks.texts import TextFiles

log = logging.getLogger(__name__)

Doc = dict[str, Any]  # canonical fields, plus "_where" (file:line or hub:split#i)

_HUB = None  # sentinel meaning "load from the Hugging Face hub"
_ENTRY_KEYS = ("files", "split", "url")  # what a split entry names; every other key overrides the source
# Longest text a canonical field may hold (source key ``max_field_chars`` raises it): far
# beyond any benchmark item, so a longer one is a broken file, not a long question.
MAX_FIELD_CHARS = 1_000_000


def check_value(value: Any, where: str, max_chars: int = MAX_FIELD_CHARS) -> None:
    """A canonical field is never null, and never a text longer than ``max_chars``."""
    if value is None:
        raise DataError(f"{where} is null or missing in the data; fix the row or drop it with the source's filter")
    if isinstance(value, str) and len(value) > max_chars:
        raise DataError(f"{where} is {len(value):,} characters, over the limit of {max_chars:,}; fix the row, "
                        "or raise the task's source.<local|hub>.max_field_chars if it is meant to be that long")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_value(item, f"{where}[{i}]", max_chars)


def load_docs(spec: "TaskSpec", role: str, data_root: Path | None) -> list[Doc]:  # noqa: F821
    """Documents of split ``role`` ("eval" or "fewshot") as canonical dicts, in source order."""
    kind = "hub" if data_root is _HUB else "local"
    source = spec.source.get(kind)
    if not source:
        fix = "set data_root to a local mirror" if kind == "hub" else "set data_root=hub"
        raise DataError(f"task {spec.name}: no {kind} source in its spec; {fix}")
    texts = TextFiles(None if data_root is _HUB else Path(data_root))
    docs: list[Doc] = []
    for entry_source, target in split_entries(spec.name, source, role):
        if kind == "hub":
            rows = _hub_rows(spec.name, entry_source, target)
        else:
            rows = _local_rows(entry_source, target, Path(data_root))
        for row in rows:
            variables = _row_variables(spec.name, entry_source, row, len(docs), texts)
            if variables is not None:
                docs.append(_to_doc(entry_source["fields"], row, variables, len(docs),
                                    int(entry_source.get("max_field_chars") or MAX_FIELD_CHARS)))
    return docs


def split_entries(task: str, source: dict[str, Any], role: str) -> list[tuple[dict[str, Any], Any]]:
    """(source with the entry's overrides, what the entry names) for each entry of a split."""
    splits = source.get("splits", {})
    if role not in splits:
        raise DataError(f"task {task}: its source has no {role!r} split (splits: {', '.join(splits) or 'none'})")
    value = splits[role]
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = [value]  # a list of patterns is one entry (hub: one split)
    out = []
    for entry in value if isinstance(value, list) else [value]:
        if isinstance(entry, dict):
            named = {k: entry[k] for k in _ENTRY_KEYS if entry.get(k) is not None}
            if len(named) != 1:
                raise DataError(f"task {task}: each entry of splits.{role} must name exactly one of "
                                f"{', '.join(_ENTRY_KEYS)} (got {entry!r})")
            overrides = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
            out.append(({**source, **overrides}, named))
        else:
            out.append((source, entry))
    return out


def fingerprint_docs(docs: list[Doc]) -> str:
    """Hash of the canonical documents: tells whether two runs saw the same data."""
    h = hashlib.sha256()
    for d in docs:
        h.update(json.dumps({k: v for k, v in d.items() if not k.startswith("_")}, sort_keys=True,
                            ensure_ascii=False, default=str).encode())
    return h.hexdigest()[:16]


def _local_format(source: dict[str, Any]) -> LocalFormat:
    return LocalFormat(**{k: v for k, v in source.items() if k in LocalFormat.__dataclass_fields__})


def _hub_rows(task: str, source: dict[str, Any], target: Any) -> list[RawRow]:
    if isinstance(target, dict) and "url" in target:
        from evalkit.tasks.texts import fetch_url

        return _file_rows(fetch_url(target["url"]), _local_format(source), where=target["url"])
    if isinstance(target, dict) and "split" not in target:
        raise DataError(f"task {task}: a hub split entry names a 'split' or a 'url' (got {target!r})")
    split = target["split"] if isinstance(target, dict) else target
    groups = source.get("groups") or [None]
    rows: list[RawRow] = []
    for group in groups:
        variables = {"group": group}
        path = render(source["path"], variables)
        name = render(source["name"], variables) if source.get("name") else None
        for row in _load_hub_split(task, path, name, split, source.get("revision")):
            if group is not None:
                row.data.setdefault("group", group)
            rows.append(row)
    return rows


def _load_hub_split(task: str, path: str, name: str | None, split: str, revision: str | None) -> list[RawRow]:
    import datasets

    try:
        ds = datasets.load_dataset(path, name, split=split, revision=revision)
    except Exception as e:  # noqa: BLE001 - datasets raises many types for "cannot reach the hub"
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(
            f"task {task}: could not load {path}{'/' + name if name else ''} split {split!r} from the hub "
            f"({first}); offline? set data_root to a local mirror (e.g. data_root=../shared/data)"
        ) from e
    where = f"hub:{path}{'/' + name if name else ''}:{split}"
    return [RawRow(dict(row), where, i) for i, row in enumerate(ds)]


def _local_rows(source: dict[str, Any], target: Any, root: Path) -> list[RawRow]:
    patterns = target["files"] if isinstance(target, dict) else target
    if isinstance(target, dict) and "files" not in target:
        raise DataError(f"a local split entry names 'files' (got {target!r})")
    fmt = _local_format(source)
    rows: list[RawRow] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        for path in resolve_files(root, pattern):
            rows.extend(_file_rows(path, fmt))
    return rows


def _file_rows(path: Path, fmt: LocalFormat, where: str | None = None) -> list[RawRow]:
    rows = list(read_file(path, fmt))
    for i, r in enumerate(rows):
        r.data.setdefault("_index", i)
        r.data.setdefault("_file", path.name)
        if where:
            r.file = where
    return rows


def _row_variables(task: str, source: dict[str, Any], row: RawRow, index: int, texts: TextFiles) -> dict[str, Any] | None:
    """The variables ``fields`` see for ``row``, or None when the source's ``filter`` drops it."""
    variables = {"_index": index, **row.data, "row": row.data}
    keep = source.get("filter")
    if keep:
        try:
            if not evaluate(keep, variables):
                return None
        except TemplateError as e:
            raise DataError(f"{row.where}: filter ({keep!r}): {e}") from None
    for name, template in (source.get("texts") or {}).items():
        try:
            variables[name] = texts.read(render(template, variables))
        except TemplateError as e:
            raise DataError(f"{row.where}: texts.{name} ({template!r}): {e}") from None
    return variables


def _to_doc(fields: dict[str, str], row: RawRow, variables: dict[str, Any], index: int,
            max_chars: int = MAX_FIELD_CHARS) -> Doc:
    doc: Doc = {}
    for name, expr in fields.items():
        try:
            doc[name] = evaluate(expr, variables)
        except TemplateError as e:
            raise DataError(f"{row.where}: field {name!r} ({expr!r}): {e}") from None
        # A field may be null only where its expression says so (BBQ's "none if ... else ...").
        if doc[name] is not None or "none" not in str(expr).lower():
            check_value(doc[name], f"{row.where}: field {name!r} ({expr!r})", max_chars)
    doc.setdefault("id", str(index))
    doc["id"] = str(doc["id"])
    doc["_where"] = row.where
    return doc
