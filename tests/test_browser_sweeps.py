"""A sweep made and run from a real browser: Train form -> "Use as sweep base" -> create -> start a worker ->
the trials table and the figures fill in live. Screenshot: sweeps.png in $MASKCLS_TEST_ARTIFACTS."""

import pytest

from conftest import ARTIFACTS, chromium_page, go, needs_chromium, running_studio, wait_idle, wait_until
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
    assert sweeps.load_sweep(runs, "browser").base["epochs"] == 1
    assert all((runs / r / "best.pt").is_file() for r in table["run"])
