"""A sweep made and run from a real browser: Train form -> "Use as sweep base" -> create -> start a worker ->
the trials table and the figures fill in live. Screenshot: test-artifacts/sweeps.png."""
import os

import pytest

from conftest import running_studio
from maskcls.runs import sweeps
from test_browser import ARTIFACTS, CHROMIUM, go, wait_idle
from test_sweeps import wait_for

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")


def test_create_and_run_a_sweep_in_the_browser(demo_root, tmp_path):
    from playwright.sync_api import sync_playwright
    runs = tmp_path / "runs"
    ARTIFACTS.mkdir(exist_ok=True)
    with running_studio(MASKCLS_RUNS=str(runs), MASKCLS_DATA=str(demo_root)) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        wait_idle(page)
        go(page, "Train")
        page.get_by_role("button", name="Use as sweep base").click()
        page.get_by_text("Base config: the Train form's values").wait_for()
        page.get_by_label("Sweep name").fill("browser")
        page.get_by_label("Epochs per trial").fill("1")
        page.get_by_label("Trials in all (0 = no limit)").fill("2")
        page.get_by_role("button", name="Create sweep").click()
        page.get_by_text("Created sweep browser").wait_for()
        page.get_by_label("Trials per worker").fill("2")
        page.get_by_label("Trials per worker").press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Start workers").click()
        page.get_by_text("Trials (2)").wait_for(timeout=180_000)
        page.wait_for_function("() => document.body.innerText.includes('Best so far')", timeout=180_000)
        wait_for(lambda: set(sweeps.trials_table(runs, "browser")["state"]) <= {"completed", "pruned"}, 180,
                 "both trials to end")
        page.wait_for_timeout(4000)  # one more live refresh after the second trial ends
        page.screenshot(path=str(ARTIFACTS / "sweeps.png"), full_page=True)
        browser.close()
    table = sweeps.trials_table(runs, "browser")
    assert len(table) == 2 and set(table["state"]) <= {"completed", "pruned"}, table
    assert sweeps.load_sweep(runs, "browser").base["epochs"] == 1
    assert all((runs / r / "best.pt").is_file() for r in table["run"])
