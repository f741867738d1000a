"""`tessera lab --report`: the self-contained HTML page a short lab run
writes, opened in Chromium as a reader would open it. It renders without a
console error, shows the article's two tables with a verdict in every row,
and every chart is drawn with a size; a screenshot is kept as an artifact
(target/browser-artifacts/lab-report.png)."""

import os
import subprocess

from conftest import BIN, ROOT

ARTIFACTS = ROOT / "target" / "browser-artifacts"


def test_the_lab_report_renders_every_chart_without_errors(tmp_path, page):
    report = tmp_path / "lab.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_") and k != "RUST_LOG"}
    run = subprocess.run(
        [
            str(BIN), "lab",
            "--experiment", "logout,verify-cost",
            "--nodes", "2", "--probe-users", "2",
            "--access-ttl", "2s", "--spread", "200ms",
            "--cost-duration", "300ms", "--cost-clients", "2",
            "--report", str(report),
        ],
        capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    html = report.read_text()
    assert "<script" not in html and "src=" not in html

    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")

    assert page.title().startswith("tessera lab")
    for table in ("#stateful-vs-stateless", "#sessions-vs-jwt"):
        assert page.locator(table).is_visible()
    verdicts = page.locator("table.tradeoffs td.verdict")
    assert verdicts.count() >= 10
    for index in range(verdicts.count()):
        text = verdicts.nth(index).inner_text()
        assert text.split(":")[0] in ("confirmed", "qualified", "not measured"), text
    # The experiments that ran have their verdicts measured.
    assert "not measured" not in page.locator("tr", has_text="Instant logout").inner_text()

    charts = page.locator("figure.chart svg")
    assert charts.count() == 2
    for index in range(charts.count()):
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100, box
        assert chart.is_visible()
        assert chart.locator("rect.bar").count() > 0

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lab-report.png"), full_page=True)
    assert errors == [], errors
    assert failed == [], failed
