"""The dashboard in a real headless Chromium against a real API, worker and doubles.

Runs on the shared ``roomy`` stack as ``TOKEN_B``, as which no other test submits there, so the
page holds this test's batch and jobs only, and saves a screenshot of it; the Reports section is
tested on the ``reporting`` stack, over an inventory that changes between two runs; with
``AGENTQ_UPDATE_SCREENSHOT=1`` it also replaces ``docs/dashboard.png``, the one the README shows
(a plain ``make test`` leaves the working tree as it was).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from scheduler.runs import ScheduleRuns
from tests.conftest import TOKEN_A, TOKEN_B, Double, Stack, start_api
from tests.test_report_changes import CHURN, DEVICES, GONE, NEW, run_once, schedule

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    assert CHROMIUM, "Debian's chromium is needed (make test installs it: make browser)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser.new_page(viewport={"width": 1280, "height": 1000})
        browser.close()


def test_the_dashboard_shows_a_finished_batch_and_a_trace(
    roomy: Stack, service_dir: Path, tmp_path: Path, page: Page
) -> None:
    client = roomy.client()
    batch_id = client.submit_batch(
        ["Which devices are in atl1?", "Which sites are there?", "Which VLANs exist?"],
        TOKEN_B,
        name="dashboard audit",
    )
    client.wait_batch(batch_id, TOKEN_B, timeout=60, poll_interval=0.2)
    api = start_api(roomy.env, service_dir)
    screenshot = tmp_path / "dashboard.png"
    try:
        page.goto(api.base_url + "/")
        page.fill("#token", TOKEN_B)
        page.click("#login button")
        batch_row = page.locator(f"#batches tr[data-id='{batch_id}']")
        expect(batch_row).to_contain_text("dashboard audit", timeout=15_000)
        expect(batch_row).to_contain_text("succeeded")
        expect(batch_row).to_contain_text("3/3")
        expect(batch_row).to_contain_text("$0.00")  # gpt-5-mini's price, fractions of a cent
        batch_row.click()
        rows = page.locator("#batch-rows tbody tr")
        expect(rows).to_have_count(3, timeout=15_000)
        expect(rows.nth(1)).to_contain_text("Which sites are there?")
        expect(rows.nth(1)).to_contain_text("succeeded")
        rows.nth(0).click()
        timeline = page.locator("#timeline")
        expect(timeline).to_contain_text("model_call", timeout=15_000)
        expect(timeline).to_contain_text("tool_call")
        expect(timeline).to_contain_text("model_call gpt-5-mini $0.000")
        assert page.locator("#timeline .bar.tool_call").count() >= 1
        assert TOKEN_B not in page.url
        assert TOKEN_B not in page.content()  # the token is not written into the page
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        api.stop()
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("AGENTQ_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, ROOT / "docs" / "dashboard.png")


def test_the_dashboard_marks_what_changed_between_a_reports_latest_two_runs(
    reporting: Stack, changing_mcp: Double, service_dir: Path, page: Page
) -> None:
    client = reporting.client()
    runs = ScheduleRuns(client)
    report = schedule("dashboard-nightly", [DEVICES], answer_format="items")
    changing_mcp.reset()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AGENTQ_TEST_SCHEDULE_TOKEN", TOKEN_A)
            runs.register([report])
            run_once(runs, client, report, 0)
            changing_mcp.change_inventory(*CHURN)
            run_once(runs, client, report, 1)
    finally:
        changing_mcp.reset()
    api = start_api(reporting.env, service_dir)
    try:
        page.goto(api.base_url + "/")
        page.fill("#token", TOKEN_A)
        page.click("#login button")
        row = page.locator("#reports tr[data-name='dashboard-nightly']")
        expect(row).to_contain_text("succeeded", timeout=15_000)
        expect(row).to_contain_text("cost unknown")  # its latest run's, on an unpriced model
        row.click()
        expect(page.locator("#report-counts")).to_contain_text("1 changed", timeout=15_000)
        added = page.locator("#report-changes ins.added")
        removed = page.locator("#report-changes del.removed")
        expect(added).to_have_text(["+ " + name for name in NEW])
        expect(removed).to_have_text(["- " + name for name in GONE])
        assert page.locator("#report-runs button").count() == 2
        assert TOKEN_A not in page.content()
    finally:
        api.stop()
