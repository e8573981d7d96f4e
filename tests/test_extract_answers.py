"""Answer extraction and matching for the generation rows: BBH, GSM8K, TriviaQA / NQ."""

from __future__ import annotations

import pytest

from evalkit.metrics import compute_metrics
from evalkit.metrics.extract import apply_extractions
from evalkit.metrics.generation import matches
from evalkit.tasks import load_task


def _extract(task: str, text: str) -> dict:
    return apply_extractions(text, load_task(task).raw["extract"])


# ------------------------------------------------------------------------ BBH
@pytest.mark.parametrize("output, target, correct", [
    ("\nA and B = False. So the answer is False.", "False", True),
    ("\nThe sentence is odd. So the answer is no.", "no", True),
    ("\n... So the answer is (B).", "(B)", True),
    ("\n... So the answer is (B) the second one.", "(B)", True),
    ("\n... So the answer is B.", "(B)", True),
    ("\n... So the answer is (C).", "(B)", False),
    ("\n... so the answer is Yes.", "Yes", True),
    ("\nClosing brackets. So the answer is ] ) }.", "] ) }", True),
    ("\n-163 - 56 = -219. So the answer is -219.", "-219", True),
    ("\nI think it is valid.", "valid", False),  # no "the answer is": no answer
    ("\nSo the answer is (A).\nQ: another. So the answer is (B).", "(A)", True),  # the first one counts
])
def test_bbh_answer_after_so_the_answer_is(output, target, correct):
    extracted = _extract("bbh", output)["answer"]
    assert matches(extracted, target, "bbh") is correct


def test_bbh_row_is_the_macro_mean_over_tasks_with_micro_beside():
    spec = load_task("bbh")
    records = [{"group": "a", "extracted": [{"answer": "True"}], "target": "True"}] + [
        {"group": "b", "extracted": [{"answer": "(A)"}], "target": "(B)"} for _ in range(3)]
    res = compute_metrics(records, spec.metrics, spec.raw["aggregate"])
    assert res["exact_match"].value == pytest.approx(0.5)  # (1/1 + 0/3) / 2
    assert res["exact_match_micro"].value == pytest.approx(0.25)  # 1 of 4


# ---------------------------------------------------------------------- GSM8K
@pytest.mark.parametrize("output, target, flexible, strict", [
    ("She pays 3 * $400 = $1,200.\n#### 1,200", "1200", True, True),
    ("The total is $1,234.50.", "1234.5", True, False),
    ("It takes 18 minutes, so 18 minutes.", "18", True, False),
    ("So 5 + 13 = 18.00\n#### 18.00", "18", True, True),
    ("He has -3 apples.\n#### -3", "-3", True, True),
    ("He sells 12 pies for 2 dollars each", "24", False, False),
])
def test_gsm8k_numbers_with_commas_units_and_decimals(output, target, flexible, strict):
    got = _extract("gsm8k", output)
    assert matches(got["flexible"], target, "number") is flexible
    assert matches(got["strict"], target, "number") is strict


# ------------------------------------------------------------ TriviaQA and NQ
@pytest.mark.parametrize("output, correct", [
    (" The Blue Whale", True),  # article and case
    (" blue-whale", True),  # TriviaQA turns punctuation into a space (SQuAD would drop it)
    (" ‘Blue Whale’", True),  # curly quotes
    (" Balaenoptera musculus", True),  # an alias
    (" blue whales", True),
    (" whale", False),
    ("\nBlue whale", True),  # leading newline: first non-empty line
    (" Blue whale!\nQuestion: next", True),
])
def test_triviaqa_matches_any_alias_after_squad_normalisation(output, correct):
    target = ["Blue whale", "Blue whale", "Balaenoptera musculus", "Blue whales"]
    answer = _extract("triviaqa", output)["answer"]
    assert matches(answer, target, "triviaqa") is correct


def test_nq_open_first_line_against_every_reference():
    answer = _extract("nq_open", " the Pacific Ocean")["answer"]
    assert matches(answer, ["Pacific Ocean", "Pacific"], "squad")
    assert not matches(" blue-whale", ["blue whale"], "squad")  # SQuAD drops punctuation
    assert not matches(_extract("nq_open", " Atlantic")["answer"], ["Pacific Ocean"], "squad")
