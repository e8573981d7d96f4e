"""Loading from the hub ids the anchors use (hub calls faked: the hub is unreachable here)."""

from __future__ import annotations

import datasets
import pytest

from evalkit.paths import SAMPLES_DIR
from evalkit.tasks import build_samples, load_task


@pytest.fixture
def fake_hub(monkeypatch):
    """Record every load_dataset call and answer from ``tables[(path, name, split)]``."""
    calls, tables = [], {}

    def load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split))
        return tables[(path, name, split)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls, tables


def test_bbh_hub_loads_one_config_per_task_and_fetches_its_cot_prompt(fake_hub, monkeypatch):
    import evalkit.tasks.texts as texts

    calls, tables = fake_hub
    groups = load_task("bbh").source["hub"]["groups"]
    assert len(groups) == 27
    for g in groups:
        tables[("SaylorTwift/bbh", g, "test")] = [{"input": f"{g} question", "target": "(A)"}]
    fetched = []

    def fetch_url(url):
        fetched.append(url)
        return SAMPLES_DIR / "bbh" / "cot-prompts" / "sports_understanding.txt"

    monkeypatch.setattr(texts, "fetch_url", fetch_url)
    samples, _ = build_samples(load_task("bbh", {"groups": ["navigate", "snarks"]}), None)
    assert [c[1] for c in calls] == groups
    assert [s.group for s in samples] == ["navigate", "snarks"]
    assert samples[0].prompt.query == "Q: navigate question\nA: Let's think step by step."
    assert samples[0].prompt.description.startswith("Determine whether an artificially constructed sentence")
    assert fetched[0] == "https://raw.githubusercontent.com/suzgunmirac/BIG-Bench-Hard/main/cot-prompts/boolean_expressions.txt"
    assert len(set(fetched)) == 27, "each prompt file is fetched once"


def test_agieval_hub_parses_lm_eval_queries_and_reads_the_official_fewshot_csv(fake_hub, monkeypatch):
    calls, tables = fake_hub
    for g in load_task("agieval").source["hub"]["groups"]:
        tables[(f"hails/agieval-{g}", None, "test")] = [{
            "query": "A short passage.Q: Which is right? Answer Choices: (A)x (B)y (C)z (D)w\n"
                     "A: Among A through D, the answer is",
            "choices": ["(A)x", "(B)y", "(C)z", "(D)w"], "gold": [2]}]
    urls = []
    monkeypatch.setattr("evalkit.tasks.texts.fetch_url",
                        lambda url: urls.append(url) or SAMPLES_DIR / "agieval" / "few_shot_prompts.csv")
    samples, _ = build_samples(load_task("agieval", {"groups": ["lsat-lr"]}), None)
    (s,) = samples
    assert calls[0] == ("hails/agieval-aqua-rat", None, "test")
    assert urls == ["https://raw.githubusercontent.com/ruixiangcui/AGIEval/main/data/few_shot_prompts.csv"] * 2
    assert s.prompt.query == ("Problem 4.   A short passage. Which is right?\nChoose from the following options:    "
                              "(A)x (B)y (C)z (D)w\nThe answer is therefore")
    assert s.gold == 2 and len(s.prompt.shots) == 3


def test_math_hub_groups_are_the_hendrycks_configs(fake_hub):
    calls, tables = fake_hub
    for g in load_task("math").source["hub"]["groups"]:
        tables[("EleutherAI/hendrycks_math", g, "test")] = [
            {"problem": "1+1?", "solution": "It is $\\boxed{2}$.", "level": "Level 1", "type": g}]
    samples, _ = build_samples(load_task("math"), None)
    assert len(calls) == 7 and {s.target for s in samples} == {"2"}
    assert samples[0].id == "algebra/0" and len(samples[0].prompt.shots) == 4


@pytest.mark.parametrize("task, table, expect", [
    ("piqa", {("baber/piqa", None, "validation"): [{"goal": "g", "sol1": "a", "sol2": "b", "label": 1}]},
     ("Question: g\nAnswer:", ["a", "b"], 1)),
    ("siqa", {("lighteval/siqa", None, "validation"): [
        {"context": "C.", "question": "Q?", "answerA": "a", "answerB": "b", "answerC": "c", "label": "3"}]},
     ("Q: C. Q?\nA:", ["a", "b", "c"], 2)),
    ("boolq", {("aps/super_glue", "boolq", "validation"): [{"idx": 0, "passage": "P.", "question": "q", "label": 1}]},
     ("P.\nQuestion: q?\nAnswer:", ["no", "yes"], 1)),
    ("winogrande", {("allenai/winogrande", "winogrande_xl", "validation"): [
        {"sentence": "Ann gave Bo a gift because _ was kind.", "option1": "Ann", "option2": "Bo", "answer": "1"}]},
     ("Ann gave Bo a gift because Ann", ["was kind.", "was kind."], 0)),
])
def test_multiple_choice_rows_from_the_hub(fake_hub, task, table, expect):
    _, tables = fake_hub
    tables.update(table)
    (s,), _ = build_samples(load_task(task), None)
    assert (s.prompt.as_text(), s.continuations, s.gold) == expect


def test_generation_rows_from_the_hub_with_train_exemplars(fake_hub):
    _, tables = fake_hub
    train = [{"question_id": f"t{i}", "question": f"Train {i}?", "answer": {"value": f"A{i}", "aliases": [f"A{i}"]}}
             for i in range(6)]
    tables[("mandarjoshi/trivia_qa", "rc.nocontext", "validation")] = [
        {"question_id": "v0", "question": "Eval?", "answer": {"value": "X", "aliases": ["X", "Ex"]}}]
    tables[("mandarjoshi/trivia_qa", "rc.nocontext", "train")] = train
    (s,), info = build_samples(load_task("triviaqa"), None)
    assert s.target == ["X", "X", "Ex"] and len(s.prompt.shots) == 5 and s.prompt.query == "Question: Eval?\nAnswer:"
    tables[("google-research-datasets/nq_open", None, "validation")] = [{"question": "who", "answer": ["me", "I"]}]
    tables[("google-research-datasets/nq_open", None, "train")] = [{"question": f"q{i}", "answer": [f"a{i}"]} for i in range(5)]
    (s,), _ = build_samples(load_task("nq_open"), None)
    assert s.target == ["me", "I"] and s.prompt.as_text().endswith("\nQ: who?\nA:")
