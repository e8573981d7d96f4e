"""The first five card rows: spec loading, exact prompts, few-shot selection, hashing."""

from __future__ import annotations

import pytest

from evalkit.errors import ConfigError
from evalkit.paths import SAMPLES_DIR
from evalkit.tasks import build_samples, load_task

CORE = ["arc_easy", "arc_challenge", "hellaswag", "mmlu", "gsm8k"]


@pytest.mark.parametrize("name", CORE)
def test_core_specs_load_and_document_their_protocol(name):
    spec = load_task(name)
    assert spec.card["row"] and spec.card["metric"] is not None
    assert len(spec.raw["protocol"]) > 200, "the protocol must be written down in the task file"
    samples, info = build_samples(spec, SAMPLES_DIR)
    assert samples and info["n_selected"] == len(samples)


def test_arc_easy_prompt_and_choices_are_lm_eval_shaped():
    (s, *_), _ = build_samples(load_task("arc_easy"), SAMPLES_DIR)
    assert s.prompt.as_text() == "Question: Which of these is a source of light?\nAnswer:"
    assert s.continuations == ["the Sun", "a rock", "a spoon", "a pillow"]
    assert s.gold == 0 and s.id == "SAMPLE_E1"


def test_arc_numeric_labels_map_to_gold_index():
    samples, _ = build_samples(load_task("arc_challenge"), SAMPLES_DIR)
    s = next(s for s in samples if s.id == "SAMPLE_C4")
    assert s.gold == 0  # answerKey "1" among labels 1..4


def test_mmlu_five_dev_exemplars_of_the_same_subject_in_order():
    samples, info = build_samples(load_task("mmlu"), SAMPLES_DIR)
    s = samples[0]
    assert s.group == "astronomy"
    assert s.prompt.description == "The following are multiple choice questions (with answers) about astronomy.\n\n"
    assert [a for _, a in s.prompt.shots] == ["B", "C", "A", "D", "B"]
    assert s.prompt.shots[0][0] == (
        "What is the closest star to Earth?\nA. Proxima Centauri\nB. The Sun\nC. Sirius\nD. Vega\nAnswer:"
    )
    assert s.prompt.as_text().endswith(
        "Answer: B\n\nWhat is the largest planet in the Solar System?\nA. Earth\nB. Saturn\nC. Jupiter\nD. Mars\nAnswer:"
    )
    assert s.continuations == ["A", "B", "C", "D"] and s.gold == 2
    geo = next(x for x in samples if x.group == "high_school_geography")
    assert geo.prompt.shots[0][0].startswith("Which is the longest river in Africa?")
    # one prefix per subject: every item of a subject shares its shots
    assert all(x.prompt.shots == s.prompt.shots for x in samples if x.group == "astronomy")


def test_mmlu_limit_and_groups_apply_per_subject():
    spec = load_task("mmlu", {"limit": 1, "groups": ["high_school_geography"]})
    samples, _ = build_samples(spec, SAMPLES_DIR)
    assert [s.id for s in samples] == ["high_school_geography/0"]
    with pytest.raises(Exception, match="unknown group"):
        build_samples(load_task("mmlu", {"groups": ["not_a_subject"]}), SAMPLES_DIR)


def test_hellaswag_exemplars_from_the_evaluated_file_are_not_evaluated():
    samples, info = build_samples(load_task("hellaswag"), SAMPLES_DIR)
    assert len(samples) == 14 - 10
    shot_texts = {q for q, _ in samples[0].prompt.shots}
    assert not any(s.prompt.query in shot_texts for s in samples)
    assert samples[0].prompt.fewshot_delimiter == "\n\n" and len(samples[0].prompt.shots) == 10


def test_shared_and_per_item_fewshot():
    shared, _ = build_samples(load_task("arc_challenge"), SAMPLES_DIR)
    assert len({s.prompt.shots for s in shared}) == 1 and len(shared[0].prompt.shots) == 25
    per_item, _ = build_samples(load_task("arc_challenge", {"fewshot": {"shared": False, "n": 3}}), SAMPLES_DIR)
    assert len({s.prompt.shots for s in per_item}) > 1
    again, _ = build_samples(load_task("arc_challenge", {"fewshot": {"shared": False, "n": 3}}), SAMPLES_DIR)
    assert [s.prompt for s in again] == [s.prompt for s in per_item], "draws are seeded"


def test_gsm8k_exemplars_show_full_solutions_and_target_is_the_number():
    samples, _ = build_samples(load_task("gsm8k"), SAMPLES_DIR)
    s = samples[0]
    assert len(s.prompt.shots) == 5 and all("####" in a for _, a in s.prompt.shots)
    assert s.target == "15"
    assert s.prompt.query == "Question: Ben has 6 marbles and his friend gives him 9 more. How many marbles does Ben have?\nAnswer:"


def test_hash_tracks_what_changes_numbers_only():
    base = load_task("arc_easy")
    assert load_task("arc_easy").hash == base.hash
    assert load_task("arc_easy", {"prompt": {"text": "Q: {{ question }}\nA:"}}).hash != base.hash
    assert load_task("arc_easy", {"metrics": ["acc"], "primary": "acc"}).hash != base.hash
    assert load_task("arc_easy", {"card": {"row": "renamed"}}).hash == base.hash
    assert load_task("arc_easy", {"limit": 3}).hash == base.hash


@pytest.mark.parametrize(
    "override, message",
    [
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"type": "essay"}, "type must be one of"),
        ({"prompt": {"text": "{{ question "}}, "prompt.text"),
        ({"fewshot": {"select": "best"}}, "fewshot.select"),
        ({"primary": "f1"}, "primary 'f1'"),
    ],
)
def test_bad_specs_fail_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_task("arc_easy", override)


def test_unknown_task_lists_available():
    with pytest.raises(ConfigError, match="available: .*arc_easy"):
        load_task("no_such_task")
