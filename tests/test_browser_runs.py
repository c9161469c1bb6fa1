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
