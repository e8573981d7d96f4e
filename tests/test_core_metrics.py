"""Core metrics and GSM8K answer extraction on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from evalkit.metrics import compute_metrics
from evalkit.metrics.extract import apply_extractions
from evalkit.metrics.normalize import get_normalizer
from evalkit.metrics.registry import mean_stderr


def mc(group, logprobs, choices, gold):
    return {"group": group, "logprobs": logprobs, "choices": choices, "gold": gold}


def test_acc_and_acc_norm_differ_when_length_matters():
    recs = [mc("", [-4.0, -6.0], ["a", "much longer answer"], 1)]  # raw favours 0, per-char favours 1
    out = compute_metrics(recs, [{"name": "acc"}, {"name": "acc_norm"}])
    assert out["acc"].value == 0.0 and out["acc_norm"].value == 1.0
    assert recs[0]["scores"] == {"acc": 0.0, "acc_norm": 1.0}


def test_micro_and_macro_aggregates_and_breakdown():
    recs = [mc("a", [0, -1], ["x", "y"], 0)] * 3 + [mc("b", [0, -1], ["x", "y"], 1)]
    micro = compute_metrics([dict(r) for r in recs], [{"name": "acc"}], "micro")["acc"]
    macro = compute_metrics([dict(r) for r in recs], [{"name": "acc"}], "macro")["acc"]
    assert micro.value == pytest.approx(0.75) and macro.value == pytest.approx(0.5)
    assert micro.breakdown["a"]["value"] == 1.0 and micro.breakdown["b"]["n"] == 1


def test_mean_stderr_matches_sample_std_over_sqrt_n():
    m, se = mean_stderr([1, 0, 1, 1])
    assert m == 0.75 and se == pytest.approx(math.sqrt(0.25) / 2)
    assert mean_stderr([1.0]) == (1.0, None)


GSM8K_EXTRACT = {"flexible": {"fn": "last_number"}, "strict": {"fn": "regex", "pattern": r"#### (\-?[0-9\.\,]+)"}}


@pytest.mark.parametrize(
    "output, flexible, strict",
    [
        (" She has 3 + 4 = 7 apples.\n#### 7\n\n", "7", "7"),
        (" The total is $1,234.", "$1,234.", None),
        (" It costs 18.00 dollars, so the answer is 18", "18", None),
        (" no number here", None, None),
        (" -5 degrees\n#### -5", "-5", "-5"),
    ],
)
def test_gsm8k_extractions(output, flexible, strict):
    got = apply_extractions(output, GSM8K_EXTRACT)
    assert got == {"flexible": flexible, "strict": strict}


@pytest.mark.parametrize("pred, ref, same", [("$1,234.", "1234", True), ("18.00", "18", True), ("18.5", "18", False),
                                             ("7 apples", "7", False)])
def test_number_normalisation(pred, ref, same):
    norm = get_normalizer("number")
    assert (norm(pred) == norm(ref)) is same


def test_exact_match_uses_named_extraction_and_any_reference():
    recs = [{"group": "", "target": ["Paris", "paris, france"], "extracted": [{"answer": "The Paris"}]}]
    out = compute_metrics(recs, [{"name": "exact_match", "normalize": "squad"}])
    assert out["exact_match"].value == 1.0
