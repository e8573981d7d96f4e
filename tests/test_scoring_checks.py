"""Scoring settings are checked before the model loads: a misspelled metric argument, an
unknown metric, extractor or normaliser and an unknown aggregate each end the command
with one line naming the file and key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evalkit.errors import ConfigError
from evalkit.metrics import METRICS
from evalkit.metrics.checks import check_scoring, declared
from evalkit.paths import ROOT

GSM8K = "+suite.tasks.gsm8k.metrics=[{name: %s, as: exact_match_flexible, extract: flexible, %s}]"


@pytest.mark.parametrize("override, expected", [
    (GSM8K % ("exact_match", "normalise: number"), "metrics[0] (exact_match): unknown argument(s) normalise; "
                                                   "valid: extract, normalize, aggregate"),
    (GSM8K % ("exact_macth", "normalize: number"), "metrics[0]: unknown metric 'exact_macth'; available: "),
    (GSM8K % ("exact_match", "normalize: numbers"), "unknown normalize 'numbers'"),
    ("+suite.tasks.gsm8k.aggregate=mikro", "aggregate must be one of micro, macro (got 'mikro')"),
])
def test_scoring_mistakes_end_in_one_line_before_the_model_loads(tmp_path, override, expected):
    cmd = [sys.executable, "-m", "evalkit.cli", "suite=smoke", f"output_dir={tmp_path}", "progress=false", override]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalkit: error: ") and "gsm8k.yaml" in lines[0], out.stderr
    assert expected in lines[0]
    assert "Loading weights" not in out.stderr and not any(tmp_path.rglob("requests.sqlite"))


def test_every_metric_declares_its_arguments():
    for m in METRICS.values():
        assert "aggregate" in declared(m.fn), m.name  # the runner passes the task's aggregate to every metric


def test_extractors_are_checked_by_name_and_arguments():
    with pytest.raises(ConfigError, match=r"^extract.answer \(regex\): unknown argument\(s\) patern"):
        check_scoring([{"name": "exact_match"}], {"answer": {"fn": "regex", "patern": "x"}}, "micro", "generate")
    with pytest.raises(ConfigError, match=r"^extract.answer: unknown fn 'regexp'"):
        check_scoring([{"name": "exact_match"}], {"answer": {"fn": "regexp"}}, "micro", "generate")
    with pytest.raises(ConfigError, match=r"extract 'strict' is not one of the task's extractions \(answer\)"):
        check_scoring([{"name": "exact_match", "extract": "strict"}], None, "micro", "generate")
