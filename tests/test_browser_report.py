"""The report as a person sees it: opened in headless Chromium (Debian's ``chromium``, over
the DevTools protocol on a pipe). Skips when Chromium is not installed.

The screenshot is kept at ``<pytest basetemp>/browser/report.png`` (printed with ``-s``;
pytest keeps the last three basetemps) for people to look at.
"""

from __future__ import annotations

import struct

import pytest

from evalkit.compare.gate import load_gate
from evalkit.report.browser import Chromium, find_chromium
from evalkit.report.build import write_report
from tests.test_report_v2 import XSS, two_runs

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="needs Debian's chromium (make system-deps)")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    a, b = two_runs(root)
    html = write_report([a, b], root / "report.html", gate=load_gate(["gate=release"]))
    with Chromium(width=1400, height=1000) as browser:
        load = browser.open(html)
        shot = browser.screenshot(root / "report.png")  # as the page opens: tables, plots, collapsed drill-downs
        # Open every drill-down, as a reader clicking through would, before reading the text.
        browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true); true")
        facts = browser.evaluate("""({
            cardRows: [...document.querySelectorAll('table.card tbody tr')].map(r => r.dataset.row),
            tableHeights: [...document.querySelectorAll('table.card')].map(t => t.getBoundingClientRect().height),
            arcCells: [...document.querySelectorAll('tr[data-row="ARC-e"] td')].map(td => td.innerText),
            redDelta: getComputedStyle(document.querySelector('td.sig-worse')).backgroundColor,
            verdict: document.getElementById('gate-verdict').innerText,
            outputs: [...document.querySelectorAll('pre.output')].map(p => p.innerText),
            scripts: document.scripts.length,
            svgs: [...document.querySelectorAll('svg.series')].map(s => s.getBoundingClientRect().width),
        })""")
    print(f"\nreport screenshot: {shot}")
    return load, facts, shot


def test_tables_render(page):
    _, facts, _ = page
    assert facts["cardRows"] == ["MMLU", "ARC-e", "RealToxicity"]
    assert all(h > 40 for h in facts["tableHeights"])
    assert facts["arcCells"][:3] == ["ARC-e", "0-shot", "↑ better"] and "88.00" in facts["arcCells"]
    assert facts["redDelta"] == "rgb(255, 235, 233)"  # the significant drop is shaded red
    assert facts["verdict"].startswith("Gate release: FAIL")
    assert len(facts["svgs"]) == 3 and all(w >= 300 for w in facts["svgs"])


def test_no_console_errors_no_requests_no_scripts(page):
    load, facts, _ = page
    assert load.console_errors == []
    assert load.requests == [load.url]  # the page itself, nothing else
    assert load.dialogs == [] and facts["scripts"] == 0


def test_model_output_with_a_script_tag_shows_as_text(page):
    load, facts, _ = page
    assert any(XSS in text for text in facts["outputs"])  # rendered literally, not run
    assert load.dialogs == []


def test_screenshot_is_kept_for_people(page):
    _, _, shot = page
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1400 and height > 900 and len(data) > 50_000
