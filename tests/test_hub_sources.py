"""Hub sources of the core tasks: rows in the hub schema map to the same canonical
fields and prompts as the local files (the hub is stubbed: this machine is offline)."""

from __future__ import annotations

import datasets
import pytest

from evalkit.errors import DataError
from evalkit.tasks import build_samples, load_task

HUB_ROWS = {
    ("allenai/ai2_arc", "ARC-Easy"): {
        "test": [{"id": "Q1", "question": "Which is a star?", "choices": {"text": ["the Sun", "the Moon"], "label": ["A", "B"]}, "answerKey": "A"}],
    },
    ("cais/mmlu", "all"): {
        "test": [{"question": "2+2?", "subject": "elementary_mathematics", "choices": ["3", "4", "5", "6"], "answer": 1}],
        "dev": [{"question": f"q{i}", "subject": "elementary_mathematics", "choices": ["a", "b", "c", "d"], "answer": i % 4} for i in range(5)],
    },
    ("Rowan/hellaswag", None): {
        "validation": [{"ind": 7, "activity_label": "Baking", "ctx_a": "A man mixes flour.", "ctx_b": "then he",
                        "endings": ["bakes it [title] now.", "eats it.", "runs.", "sleeps."], "label": "0"}],
        "train": [{"ind": i, "activity_label": "X", "ctx_a": f"c{i}", "ctx_b": "d", "endings": ["e", "f", "g", "h"], "label": "1"} for i in range(10)],
    },
    ("openai/gsm8k", "main"): {
        "test": [{"question": "What is 2+3?", "answer": "2+3=5\n#### 5"}],
        "train": [{"question": f"q{i}", "answer": f"a\n#### {i}"} for i in range(5)],
    },
}


@pytest.fixture
def fake_hub(monkeypatch):
    def load_dataset(path, name=None, split=None, revision=None):
        try:
            return datasets.Dataset.from_list(HUB_ROWS[(path, name)][split])
        except KeyError:
            raise ConnectionError("offline") from None

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


def test_arc_from_hub(fake_hub):
    (s,), _ = build_samples(load_task("arc_easy"), None)
    assert (s.id, s.prompt.as_text(), s.continuations, s.gold) == ("Q1", "Question: Which is a star?\nAnswer:", ["the Sun", "the Moon"], 0)


def test_mmlu_from_hub_groups_by_subject(fake_hub):
    (s,), _ = build_samples(load_task("mmlu"), None)
    assert s.group == "elementary_mathematics" and s.gold == 1 and len(s.prompt.shots) == 5
    assert s.prompt.description.endswith("about elementary mathematics.\n\n")


def test_hellaswag_from_hub_is_preprocessed_like_lm_eval(fake_hub):
    (s,), _ = build_samples(load_task("hellaswag"), None)
    assert s.prompt.query == "Baking: A man mixes flour. Then he"
    assert s.continuations[0] == "bakes it. now." and s.id == "7" and len(s.prompt.shots) == 10


def test_gsm8k_from_hub(fake_hub):
    (s,), _ = build_samples(load_task("gsm8k"), None)
    assert s.target == "5" and s.prompt.query == "Question: What is 2+3?\nAnswer:"


def test_unreachable_hub_says_how_to_go_offline(fake_hub):
    with pytest.raises(DataError, match="could not load allenai/ai2_arc/ARC-Challenge .*data_root"):
        build_samples(load_task("arc_challenge"), None)
