"""A sweep made and run from a real browser: Train form -> "Use as sweep base" -> create -> start a worker ->
the trials table and the figures fill in live. Screenshot: sweeps.png in $MASKCLS_TEST_ARTIFACTS."""

import pytest

from conftest import (ARTIFACTS, SCRIPT_STATE, chromium_page, go, needs_chromium, running_studio, wait_idle,
                      wait_until)
from maskcls.orchestration import sweeps

pytestmark = [pytest.mark.browser, needs_chromium]


def test_create_and_run_a_sweep_in_the_browser(demo_root, tmp_path):
    runs = tmp_path / "runs"
    with running_studio(MASKCLS_RUNS=str(runs), MASKCLS_DATA=str(demo_root)) as (url, _), \
            chromium_page(1400, 1100) as page:
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
        wait_until(lambda: len(t := sweeps.trials_table(runs, "browser")) == 2
                   and set(t["state"]) <= {"completed", "pruned"}, 180, "both trials to end")
        page.wait_for_timeout(4000)  # one more live refresh after the second trial ends
        page.screenshot(path=str(ARTIFACTS / "sweeps.png"), full_page=True)
    table = sweeps.trials_table(runs, "browser")
    assert len(table) == 2 and set(table["state"]) <= {"completed", "pruned"}, table
    base = sweeps.load_sweep(runs, "browser").base  # the Train form's values, the sidebar's data root and bounds
    assert (base["epochs"], base["data_root"], base["age_lower"], base["age_upper"]) == (1, str(demo_root), 30, 60)
    assert all((runs / r / "best.pt").is_file() for r in table["run"])


CLICK_TRAIN_AT_ONCE = f"""() => {{
    const link = [...document.querySelectorAll('[data-testid=stSidebarNav] a')].find(a => a.innerText.includes('Train'));
    if (!link) return false;
    const state = {SCRIPT_STATE};
    link.click();
    return state;
}}"""


def sidebar_values(page) -> list[str]:
    return page.evaluate("() => Array.from(document.querySelectorAll('[data-testid=stSidebar] input'), e => e.value)")


def test_a_page_switched_to_during_the_first_run_keeps_the_sidebar_settings(demo_root, tmp_path):
    """A user who clicks Train while the first page still draws: the browser drops the sidebar widgets' values
    (streamlit/streamlit#6146). It showed an empty data root and age bounds 1 and 2, and "Use as sweep base" sent
    them: the sweep trained on the demo data with those bounds while the sidebar (redrawn) showed the real ones."""
    runs = tmp_path / "runs"
    for attempt in range(4):  # a fresh server each time: only a first run is slow enough to be interrupted
        with running_studio(MASKCLS_RUNS=str(runs), MASKCLS_DATA=str(demo_root)) as (url, _), \
                chromium_page(1400, 1100) as page:
            page.goto(url)
            # Train is clicked the moment the navigation appears, while the first run (the data root's first
            # index) still draws the sidebar: the click is the browser's own, fired from the page, so it lands then
            running = page.wait_for_function(CLICK_TRAIN_AT_ONCE, polling=10).json_value()
            if running != "running":
                continue  # this first run ended before its navigation was drawn: nothing to interrupt
            page.get_by_role("button", name="Use as sweep base").wait_for()
            assert sidebar_values(page)[:4] == [str(demo_root), str(runs), "30", "60"]
            page.get_by_role("button", name="Use as sweep base").click()
            page.get_by_text("Base config: the Train form's values").wait_for()
            wait_idle(page)
            page.get_by_label("Sweep name").fill("early")
            page.get_by_role("button", name="Create sweep").click()
            page.get_by_text("Created sweep early").wait_for()
            break
    else:
        pytest.fail("in 4 fresh starts the first run never outlasted the drawing of its navigation")
    base = sweeps.load_sweep(runs, "early").base
    assert (base["data_root"], base["age_lower"], base["age_upper"]) == (str(demo_root), 30, 60), base
