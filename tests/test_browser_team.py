"""The Runs page across the team, as a user drives it: a teammate's run in the Team table, Pull it, then compare it
with a run of this machine (a real team store behind the studio)."""
import os
import shutil

import pytest
from playwright.sync_api import expect

from conftest import (TEAM_ENV, choose, chromium_page, copy_run, needs_chromium, running_studio, shot, team_store,
                      tiny, wait_idle)

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]


def test_pull_a_teammates_run_and_compare_it_with_mine(studio_demo, demo_root, tiny_run, tmp_path):
    from maskcls.cli import main
    from maskcls.train.driver import train_run
    with team_store(tmp_path) as (store, _):
        copy_run(tiny_run, tmp_path)
        shutil.move(str(tmp_path / "runs"), tmp_path / "alice")
        assert main(["team", "push", "done", "--member", "alice", "--runs-root", str(tmp_path / "alice")]) == 0
        mine = tmp_path / "bob"
        train_run(tiny(demo_root, tmp_path, epochs=2, seed=1), mine, "mine")
        env = {**TEAM_ENV, "MASKCLS_TEAM": store.uri, "MASKCLS_MEMBER": "bob", "MASKCLS_RUNS": str(mine),
               "MASKCLS_CACHE": os.environ["MASKCLS_CACHE"]}
        with running_studio(**env) as (url, _), chromium_page(1400, 1300) as page:
            page.goto(url + "/runs")
            wait_idle(page)
            def box(label):  # the selectbox whose label reads exactly `label`
                return page.get_by_role("combobox", name=label, exact=True)
            # the teammate's run, in the Team table (a canvas) and so in the picker beside Pull
            expect(box("Teammate's run or group")).to_have_value("alice/done", timeout=60_000)
            shot(page, "team-runs-before-pull")
            page.get_by_role("button", name="Pull").click()
            wait_idle(page)
            page.get_by_text("Pulled alice/done").wait_for()
            assert (mine / "team" / "alice" / "done" / "best.pt").is_file()
            choose(page, box("A"), "mine")
            choose(page, box("B"), "alice/done")
            wait_idle(page)
            page.get_by_role("button", name="Compare").click()
            wait_idle(page)
            page.get_by_text("as trained models on these people").first.wait_for()
            page.get_by_text("B = run alice/done (pulled from alice's server)").wait_for()
            shot(page, "team-runs-compared")
