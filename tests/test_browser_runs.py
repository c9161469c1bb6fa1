"""The Runs page's delete, clicked as a user clicks it: one confirmation deletes one run, and says so."""
import json
import os
import time

import pytest

from conftest import choose, chromium_page, needs_chromium, running_studio, shot, wait_idle

pytestmark = [pytest.mark.browser, needs_chromium]


def fake_run(root, name: str) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "resnet18", "epochs": 1}))
    (folder / "status.json").write_text(json.dumps({"state": "completed", "started": time.time() - 60,
                                                    "ended": time.time()}))


def pick_box(page):
    """The Run box inside the "Delete a run" expander, clicked where a user clicks it: on the box itself (its label
    above only focuses it)."""
    return page.locator("[data-testid='stExpander'] [data-testid='stSelectbox']").first.get_by_role("combobox")


def test_deleting_a_run_never_arms_the_next(studio_demo, tmp_path):
    runs = tmp_path / "runs"
    for name in ("alpha", "bravo", "charlie"):
        fake_run(runs, name)
    with running_studio(MASKCLS_RUNS=str(runs), MASKCLS_CACHE=os.environ["MASKCLS_CACHE"]) as (url, _), \
            chromium_page(1300, 1000) as page:
        page.goto(url + "/runs")
        wait_idle(page)
        page.get_by_text("Delete a run").click()
        choose(page, pick_box(page), "bravo")
        wait_idle(page)
        page.get_by_text("Yes, delete bravo and all its checkpoints").click()
        wait_idle(page)
        page.get_by_role("button", name="Delete bravo").click()
        wait_idle(page)
        page.get_by_text("Deleted bravo and all its checkpoints.").wait_for()
        shot(page, "runs-delete")
        assert not (runs / "bravo").exists() and (runs / "alpha").exists() and (runs / "charlie").exists()
        assert page.get_by_text("Yes, delete").count() == 0  # no confirmation is left armed for another run
        assert page.get_by_role("button", name="Delete alpha").count() == 0
        choose(page, pick_box(page), "alpha")  # a new pick needs a new tick
        wait_idle(page)
        assert page.get_by_role("button", name="Delete alpha").is_disabled()
        assert not page.get_by_role("checkbox", name="Yes, delete alpha and all its checkpoints").is_checked()


def test_filter_by_a_config_key_then_compare_the_run_it_found(studio_demo, tiny_run, tmp_path):
    """A season's Runs page: type a config filter, the table keeps the one run, B is picked from the filtered
    runs (listed first), and "Is B better than A?" answers for it."""
    import shutil
    from maskcls.common.fileio import write_json
    from maskcls.common.runfolder import RunFolder
    runs = tmp_path / "runs"
    for name in ("base", "other", "wide"):
        shutil.copytree(tiny_run[0] / tiny_run[1], runs / name, ignore=shutil.ignore_patterns(".*.lock"))
    wide = RunFolder(runs, "wide")
    write_json(wide.config_path, {**wide.read_config(), "lr": 0.0042})
    with running_studio(MASKCLS_RUNS=str(runs), MASKCLS_CACHE=os.environ["MASKCLS_CACHE"]) as (url, _), \
            chromium_page(1400, 1100) as page:
        page.goto(url + "/runs")
        wait_idle(page)
        page.get_by_text("3 of 3 runs").wait_for()
        box = page.get_by_role("textbox", name="Config")
        box.fill("lr=0.0042")
        box.press("Enter")
        wait_idle(page)
        page.get_by_text("1 of 3 runs").wait_for()
        shot(page, "runs-filtered")
        choose(page, page.get_by_role("combobox", name="A", exact=True), "base")
        b = page.get_by_role("combobox", name="B", exact=True)
        b.click()
        options = page.get_by_role("option")
        options.first.wait_for()
        assert options.first.inner_text().strip() == "wide"  # the run the filter found leads the list
        page.keyboard.press("Escape")
        choose(page, b, "wide")
        wait_idle(page)
        page.get_by_role("button", name="Compare").click()
        wait_idle(page)
        page.get_by_text("B = run wide").wait_for()
        shot(page, "runs-filtered-compared")
        assert page.get_by_text("cannot judge: +0.000").count() == 1  # a copy of the same model: no verdict
