"""Package seams: the reporter reads run folders only (it loads no engine and no task
code), compare never imports report, and the backends have no import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from evalkit.paths import ROOT

PKG = ROOT / "evalkit"


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return {m for m in out.stdout.split() if m.startswith("evalkit")}


def test_report_loads_no_backend_and_no_task_code():
    mods = [f"evalkit.report.{p.stem}" for p in (PKG / "report").glob("*.py")] + ["evalkit.cli.report"]
    loaded = _loaded_after("\n".join(f"import {m}" for m in mods))
    assert "evalkit.report.build" in loaded  # the probe ran
    assert not {m for m in loaded if m.startswith(("evalkit.backends", "evalkit.tasks", "evalkit.runner", "evalkit.config"))}


def test_compare_does_not_import_report():
    mods = [f"evalkit.compare.{p.stem}" for p in (PKG / "compare").glob("*.py")]
    loaded = _loaded_after("\n".join(f"import {m}" for m in mods))
    assert "evalkit.compare.rows" in loaded
    assert not {m for m in loaded if m.startswith("evalkit.report")}


def _imports(path: Path, package: str) -> set[str]:
    """Every evalkit module ``path`` imports, anywhere in it (TYPE_CHECKING and function bodies too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else f"{package}.{node.module}"
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n, [])):
            return found
    return None


def test_no_import_cycle_inside_backends():
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (PKG / "backends").rglob("*.py")}
    graph = {m: {i for i in _imports(p, m.rpartition(".")[0]) if i in files and i != m} for m, p in files.items()}
    # A package's __init__ re-exporting its modules is not a cycle of the modules themselves.
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    assert "evalkit.backends.hf.engine" in graph["evalkit.backends.hf.scoring"]  # the graph was read
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"
