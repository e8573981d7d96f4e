"""MATH: final-answer extraction, normalisation and mathematical equivalence."""

from __future__ import annotations

import pytest

from evalkit.metrics import compute_metrics
from evalkit.metrics.math_equiv import last_boxed, math_answer, math_equal, normalize_math


@pytest.mark.parametrize("pred, ref", [
    ("\\frac12", "0.5"),
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("1/2", ".5"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("10\\text{ cm}", "10"),
    ("90^\\circ", "90"),
    ("90^{\\circ}", "90"),
    ("\\$24", "24"),
    ("1,000", "1000"),
    ("x = 5", "5"),
    ("\\sqrt2", "\\sqrt{2}"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("x^2+2x", "2x+x^2"),
    ("\\boxed{7}", "7"),
    ("\\text{(C)}", "(C)"),
    ("[2,5)", "[2, 5)"),
    ("-\\frac{2}{3}", "-2/3"),
    ("50\\%", "50"),
])
def test_equivalent_answers(pred, ref):
    assert math_equal(pred, ref)


@pytest.mark.parametrize("pred, ref", [
    ("2", "3"),
    ("(1,2)", "[1,2)"),  # an open and a half-open interval are different answers
    ("1,2", "12"),  # a bare pair is not a thousands separator
    ("x^2", "y^2"),
    ("0.33", "\\frac13"),
    (None, "1"),
    ("", "1"),
    ("9^9^9^9^9", "1"),  # refused, not evaluated
    ("__import__('os')", "0"),
])
def test_different_or_unsafe_answers(pred, ref):
    assert not math_equal(pred, ref)


def test_last_boxed_balances_braces_and_takes_the_last():
    text = "first \\boxed{1} then $\\boxed{\\frac{a}{b^{2}}}$."
    assert last_boxed(text) == "\\frac{a}{b^{2}}"
    assert last_boxed("\\fbox{4}") == "4" and last_boxed("\\boxed 5$") == "5" and last_boxed("no box") is None


def test_answer_extraction_order_minerva_then_boxed_then_answer_is():
    minerva = "So $x=3$.\nFinal Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.\n\nProblem: next"
    assert math_answer(minerva) == "$\\frac{2}{3}$"
    assert math_answer("Final Answer: The final answer is 3.5. I hope it is correct.") == "3.5"
    assert math_answer("We get \\boxed{12} in the end.") == "12"
    assert math_answer("First try 4. So the answer is 12.\nDone") == "12"
    assert math_answer("I do not know") is None


def test_normalisation_is_the_identity_on_normal_forms():
    assert normalize_math("\\frac{1}{2}") == "\\frac{1}{2}"
    assert normalize_math("\\tfrac34") == "\\frac{3}{4}"
    assert normalize_math("\\text{neither}") == "neither"


def test_math_equiv_metric_scores_any_reference():
    records = [
        {"group": "algebra", "extracted": [{"answer": "0.5"}], "target": "\\frac{1}{2}"},
        {"group": "algebra", "extracted": [{"answer": "4"}], "target": "5"},
        {"group": "geometry", "extracted": [{"answer": None}], "target": "1"},
        {"group": "geometry", "extracted": [{"answer": "(1, 1)"}], "target": "\\left(1,1\\right)"},
    ]
    res = compute_metrics(records, [{"name": "math_equiv", "extract": "answer"}])["math_equiv"]
    assert res.per_sample == [1.0, 0.0, 0.0, 1.0] and res.value == 0.5
    assert res.breakdown["algebra"]["value"] == 0.5 and res.breakdown["geometry"]["value"] == 0.5
