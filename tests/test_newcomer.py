"""A newcomer's first hour: help, the tasks table, choosing tasks, own config folders,
what a card row says it measured, file modes, compare's output folder, run-folder errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

from evalkit.cli import COMMANDS, main
from evalkit.errors import ConfigError, EvalkitError
from evalkit.files import atomic_write_text
from evalkit.hydra_checks import check_overrides, compose_config
from evalkit.paths import ROOT
from evalkit.report.build import write_report
from evalkit.rundir import load_results
from tests.test_compare_fixtures import gen_record, make_run, mc_record


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "evalkit.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_help_names_every_command_and_group_choice():
    proc = _cli("--help")
    assert proc.returncode == 0 and "Hydra" not in proc.stdout.split("Hydra's own help")[0]
    for name in COMMANDS:
        assert f"\n  {name} " in proc.stdout
    assert "card_safety" in proc.stdout and "gate      demo, release  (compare/report only)" in proc.stdout
    assert proc.stdout.count("\n  evalkit ") == 3  # three examples
    assert _cli("help").stdout == proc.stdout


def test_version_is_evalkits(capsys):
    from evalkit import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"evalkit {__version__}"


def test_tasks_table_says_what_is_present_under_data_root(tmp_path, capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    mmlu = next(line for line in out.splitlines() if line.startswith("mmlu "))
    assert mmlu.split() == ["mmlu", "MMLU", "acc", "loglikelihood", "5", "mmlu/test/*_test.csv", "yes"]
    (tmp_path / "arc").mkdir()
    (tmp_path / "arc" / "arc_easy_test.jsonl").write_text("{}\n")
    assert main(["tasks", f"data_root={tmp_path}"]) == 0
    rows = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[2:] if line.strip()}
    assert rows["arc_easy"] == "yes" and rows["mmlu"] == "no"
    assert main(["tasks", "limit=3"]) == 2


def test_tasks_key_chooses_the_tasks_and_names_the_run():
    cfg = compose_config(["tasks=arc_easy,gsm8k", "suite.tasks.gsm8k.limit=3"])
    assert cfg["suite"] == {"name": "custom-arc_easy-gsm8k", "tasks": {"arc_easy": {}, "gsm8k": {"limit": 3}}}
    assert "tasks" not in cfg
    cfg = compose_config(["suite=smoke", "tasks=gsm8k"])  # the suite's settings for a chosen task are kept
    assert cfg["suite"]["tasks"] == {"gsm8k": {"limit": 2, "generation": {"max_new_tokens": 48}}}


@pytest.mark.parametrize("overrides, expected", [
    (["suite=card_safety", "suite.tasks.gsm8k.limit=5"], "gsm8k is not run by suite card_safety (it runs: realtoxicityprompts"),
    (["tasks=[arc_easy]", "suite.tasks.mmlu.limit=5"], "mmlu is not run by tasks=arc_easy"),
    (["suite.tasks={arc_easy: {}}"], "merges into the suite's tasks instead of replacing them"),
    (["suite=custom"], "suite=custom lists no tasks; choose them with tasks=a,b"),
    (["tasks=[arc_easy,nope]"], "unknown task 'nope'"),
])
def test_a_setting_never_adds_a_task_silently(overrides, expected):
    with pytest.raises(ConfigError, match=".*") as e:
        check_overrides(overrides)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_max_gen_toks_caps_generation_tasks_and_changes_their_hash():
    from evalkit.tasks import load_task

    cfg = compose_config(["tasks=arc_easy,gsm8k", "max_gen_toks=16"])
    assert cfg["suite"]["tasks"] == {"arc_easy": {}, "gsm8k": {"generation": {"max_new_tokens": 16}}}
    assert load_task("gsm8k", cfg["suite"]["tasks"]["gsm8k"]).hash != load_task("gsm8k").hash


def test_own_suite_from_config_dir_and_env(tmp_path, monkeypatch):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "mycard.yaml").write_text("name: mycard\ntasks:\n  arc_easy: {limit: 2}\n")
    check_overrides(["suite=mycard"], [str(tmp_path)])
    assert compose_config(["suite=mycard"], [str(tmp_path)])["suite"]["name"] == "mycard"
    with pytest.raises(ConfigError, match="no such suite config; choose one of: card, "):
        check_overrides(["suite=mycard"])
    monkeypatch.setenv("EVALKIT_CONFIG_PATH", str(tmp_path))
    check_overrides(["suite=mycard"])
    with pytest.raises(ConfigError, match="--config-dir /nonexistent: no such folder"):
        check_overrides(["suite=mycard"], ["/nonexistent"])


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_missing_path_and_unfinished_run_have_their_own_messages(tmp_path):
    with pytest.raises(EvalkitError, match="no such file or folder"):
        load_results(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(EvalkitError, match="unfinished run"):
        load_results(tmp_path / "half")
    with pytest.raises(EvalkitError, match="not a run folder"):
        load_results(tmp_path)


def test_a_run_that_fails_before_its_first_answer_leaves_no_folder(tmp_path):
    from evalkit.errors import DataError
    from evalkit.runner.run import run
    from tests.conftest import run_config

    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    cfg = run_config(tmp_path, "tasks=arc_easy", f"data_root={empty}")
    with pytest.raises(DataError):
        run(cfg)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_compare_writes_a_folder_named_after_the_two_runs(tmp_path):
    a = make_run(tmp_path, "base", {"arc_easy": {"records": [mc_record(i, 1) for i in range(20)]}})
    b = make_run(tmp_path, "new", {"arc_easy": {"records": [mc_record(i, i % 2) for i in range(20)]}},
                 {"chat_template": True})
    assert main(["compare", str(a), str(b), "--no-html"]) == 0
    assert (tmp_path / "compare__base__vs__new" / "summary.md").is_file()


def test_card_rows_show_n_coverage_and_scorer(tmp_path):
    mmlu = [mc_record(i, i % 2, group=("anatomy" if i < 4 else "virology")) for i in range(8)]
    tox = [gen_record(i, 0.1, "fine") for i in range(5)]
    run = make_run(tmp_path, "r", {"mmlu": {"records": mmlu}, "toxicity": {"records": tox, "higher_is_better": False}})
    res = json.loads((run / "results.json").read_text())
    res["tasks"]["mmlu"]["card"]["subsets"] = {"total": 57, "unit": "subjects"}
    res["tasks"]["mmlu"]["metrics"]["acc"]["breakdown"] = {"anatomy": {}, "virology": {}}
    res["tasks"]["toxicity"]["judge"] = {"scorer": {"name": "profanity_check", "version": "1"}}
    (run / "results.json").write_text(json.dumps(res))
    html = write_report([run], tmp_path / "card.html").read_text()
    assert "n=8; 2 of 57 subjects" in html and "n=5" in html
    assert "scorer: <code>profanity_check</code>" in html and "card used Perspective API; not comparable" in html


def test_disjoint_runs_of_one_model_fill_one_column(tmp_path):
    pt = make_run(tmp_path, "pt", {"arc_easy": {"records": [mc_record(i, 1) for i in range(10)]}})
    code = make_run(tmp_path, "code", {"mmlu": {"records": [mc_record(i, i % 2, group="anatomy") for i in range(10)]}})
    for folder, suite in ((pt, "card_pt"), (code, "card_code")):
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        (folder / "config.yaml").write_text(yaml.safe_dump({**cfg, "suite": {"name": suite}}))
    html = write_report([pt, code], tmp_path / "card.html").read_text()
    assert html.count("<th>#1 ") == 1 and "<th>#2 " not in html  # ARC-e and MMLU in one model column
    assert f"{pt.resolve()} + {code.resolve()}" in html and "Question 0?" in html  # both folders, both samples
