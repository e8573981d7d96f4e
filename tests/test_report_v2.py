"""Report v2 from fixture run folders: card order, reference columns, arrows, deltas coloured
only when significant, gate verdicts, plots, flipped items, escaping, self-containment."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from evalkit.cli import main
from evalkit.compare.gate import load_gate
from evalkit.report.build import write_report
from evalkit.card import card_frame
from evalkit.rundir import load_results
from tests.test_compare_fixtures import gen_record, make_run, mc_record

XSS = "<script>alert(1)</script>"


class _Rows(HTMLParser):
    """Cells of every ``<tr data-row=...>``: {row: [(class, text), ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[tuple[str, str]]] = {}
        self._row: str | None = None
        self._cell: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-row" in a:
            self._row = a["data-row"]
            self.rows[self._row] = []
        elif tag == "td" and self._row is not None:
            self._cell = [a.get("class") or "", ""]

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[self._row].append((self._cell[0], self._cell[1].strip()))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def two_runs(root):
    """Base and new: ARC-e drops significantly (one flipped output is an XSS attempt), MMLU is
    unchanged, RealToxicity (lower is better) rises a little but not significantly."""
    arc_b = [mc_record(i, 1) for i in range(200)]
    arc_n = [mc_record(i, 0 if i < 40 else 1, pred_text=XSS) for i in range(200)]
    mmlu = [mc_record(i, i % 2, group="anatomy") for i in range(40)]
    tox_b = [gen_record(i, 0.2, "fine") for i in range(30)]
    tox_n = [gen_record(i, 0.2 + (0.05 if i == 0 else 0), XSS if i == 0 else "fine") for i in range(30)]
    tox = {"metric": "toxicity", "higher_is_better": False}
    a = make_run(root, "base", {"arc_easy": {"records": arc_b}, "mmlu": {"records": mmlu},
                                "toxicity": {"records": tox_b, **tox}})
    b = make_run(root, "new", {"arc_easy": {"records": arc_n}, "mmlu": {"records": mmlu},
                               "toxicity": {"records": tox_n, **tox}}, {"chat_template": True})
    return a, b


@pytest.fixture
def report(tmp_path):
    a, b = two_runs(tmp_path)
    path = write_report([a, b], tmp_path / "report.html", gate=load_gate(["gate=release"]))
    return path.read_text()


def test_tables_follow_the_card_with_its_reference_values_and_arrows(report):
    rows = _parse(report)
    assert list(rows) == ["MMLU", "ARC-e", "RealToxicity"]  # card order; capability before safety
    arc = [text for _, text in rows["ARC-e"]]
    assert arc[:3] == ["ARC-e", "0-shot", "↑ better"] and arc[-2:] == ["88.00", "88.60"]  # card: Gemma 2 PT
    tox = [text for _, text in rows["RealToxicity"]]
    assert tox[2] == "↓ better" and tox[-2:] == ["8.25", "8.84"]  # card: Gemma 2 IT
    assert "card: Gemma 2 PT 9B" in report and "card: Gemma 2 IT 9B" in report
    assert "#1 chat_template=false" in report and "#2 chat_template=true" in report
    assert arc[3].startswith("100.00") and arc[4].startswith("80.00 [")  # one column per run, 95% interval


def test_deltas_are_coloured_only_when_significant_and_carry_the_gate_verdict(report):
    rows = _parse(report)
    arc_delta = next(c for c in rows["ARC-e"] if "delta" in c[0])
    assert "sig-worse" in arc_delta[0] and arc_delta[1].startswith("-20.00")
    tox_delta = next(c for c in rows["RealToxicity"] if "delta" in c[0])
    assert tox_delta[1].startswith("+0.17") and "sig-" not in tox_delta[0]  # not significant: not coloured
    mmlu_delta = next(c for c in rows["MMLU"] if "delta" in c[0])
    assert mmlu_delta[1].startswith("+0.00") and "sig-" not in mmlu_delta[0]
    assert any(t.startswith("regression · ") and t.endswith(" items") for _, t in rows["ARC-e"])  # with coverage
    assert 'data-verdict="fail"' in report and "2 rows blocking" in report
    assert "chat_template=true: inconclusive, Δ +0.00" in report  # an unchanged row on 20 items is not a pass


def test_plots_and_flipped_items_with_model_text_escaped(report):
    assert report.count("<svg") == 3 and report.count("<circle") == 6
    assert 'data-state="worse"' in report  # ARC-e's second point: significantly worse than run #1
    assert "40 items got worse, 0 got better" in report
    assert "Question: Question 0?" in report  # the prompt of a flipped item
    assert XSS not in report and "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "<script" not in report.lower()


def test_the_page_is_self_contained(report):
    assert "http://" not in report and "https://" not in report
    assert "default-src 'none'" in report  # even injected markup could fetch or run nothing
    assert "<link" not in report and "<img" not in report


def test_a_single_run_report_has_no_deltas_or_plots(tmp_path):
    a, _ = two_runs(tmp_path)
    html = write_report([a], tmp_path / "one.html").read_text()
    assert "<svg" not in html and "Δ #" not in html and "Gate" not in html
    assert len(_parse(html)["ARC-e"]) == 3 + 1 + 2  # label, metric, arrow, one run, two card values


def test_runs_with_no_task_in_common_fill_one_card_without_deltas_or_plots(tmp_path):
    # e.g. card_pt and card_code of one checkpoint: nothing to compare, nothing to plot.
    a = make_run(tmp_path, "pt", {"arc_easy": {"records": [mc_record(i, 1) for i in range(20)]}})
    b = make_run(tmp_path, "code", {"mmlu": {"records": [mc_record(i, i % 2, group="anatomy") for i in range(20)]}},
                 {"chat_template": True})
    html = write_report([a, b], tmp_path / "card.html").read_text()
    assert "<svg" not in html and "Δ #" not in html and "Across runs" not in html
    rows = _parse(html)
    arc, mmlu = [t for _, t in rows["ARC-e"]], [t for _, t in rows["MMLU"]]
    assert arc[3].startswith("100.00 [83.89, 100.00]") and "n=20" in arc[3] and arc[4] == "—"  # one column per run
    assert mmlu[3] == "—" and mmlu[4].startswith("50.00 [48.04, 51.96]")


def test_report_command_over_several_runs(tmp_path, capsys):
    a, b = two_runs(tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", str(a), str(b), "gate=release", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "chat_template=true" in printed and out.exists() and "Gate <code>release</code>: FAIL" in out.read_text()


def test_card_frame_still_prints_the_card_table(tmp_path):
    a, b = two_runs(tmp_path)
    frame = card_frame([load_results(a), load_results(b)])
    assert list(frame["Benchmark"]) == ["MMLU", "ARC-e", "RealToxicity"]
    assert frame.loc[frame["Benchmark"] == "ARC-e", "card: Gemma 2 PT 9B"].item() == "88.00"


def _parse(html: str) -> dict[str, list[tuple[str, str]]]:
    p = _Rows()
    p.feed(html)
    return p.rows
