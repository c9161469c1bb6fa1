"""The competitor's loop as a user clicks it (issue 44), in Debian's Chromium against a running studio on a demo:
Data -> Augment (save a spec) -> Train (from the winners-2022 preset, scaled to the CPU, time estimated first)
-> Evaluate (tick two suggestions in the queue's table, accept both at once) -> Ensemble (score on validation,
predict, record a public score) -> Report (builds, shows the leaderboard log). One screenshot per step in
$MASKCLS_TEST_ARTIFACTS (loop-*.png)."""
import re
import time

import pytest

from conftest import chromium_page, choose, go, needs_chromium, running_studio, shot, wait_idle
from maskcls.common.runfolder import RunFolder

pytestmark = [pytest.mark.browser, needs_chromium]


def grid_cell(page, grid, row: int, col_x: float = 37):
    """Where a user clicks a checkbox of a data editor's grid (drawn on a canvas): header row, then rows of 35 px."""
    box = grid.bounding_box()
    return box["x"] + col_x, box["y"] + 35 + 35 * row + 17


def test_the_competitors_loop_in_the_browser(demo_root, tmp_path):
    runs = tmp_path / "runs"
    with running_studio(MASKCLS_RUNS=str(runs), MASKCLS_DATA=str(demo_root)) as (url, _), \
            chromium_page(1400, 1200) as page:
        page.goto(url)
        wait_idle(page)
        page.get_by_text(re.compile("Next: Train")).wait_for()
        shot(page, "loop-1-home")

        go(page, "Data")
        page.get_by_text("Images per class").first.wait_for()
        shot(page, "loop-2-data")

        go(page, "Augment")
        page.get_by_label("Spec name").fill("cpu-spec")
        page.get_by_label("Spec name").press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Save for training").click()
        page.get_by_text(re.compile("Saved to .*cpu-spec")).wait_for()
        shot(page, "loop-3-augment")

        go(page, "Train")
        choose(page, page.get_by_role("combobox", name="Start from"), "winners-2022")
        page.get_by_text(re.compile("The form holds the config from winners-2022")).wait_for()
        choose(page, page.get_by_role("combobox", name="Model"), "resnet10t")  # scaled to the CPU
        page.get_by_text("Pretrained weights").click()
        for label, value in (("Image height", "64"), ("Image width", "48"), ("Epochs", "2"), ("Batch size", "16"),
                             ("Warm-up epochs", "0.5")):
            page.get_by_label(label, exact=True).fill(value)
            page.get_by_label(label, exact=True).press("Enter")
            wait_idle(page)
        choose(page, page.get_by_role("combobox", name="Augmentation"), "saved: cpu-spec")
        page.get_by_label("Run name (or group name)").fill("w22")
        page.get_by_label("Run name (or group name)").press("Enter")
        wait_idle(page)
        page.get_by_role("button", name=re.compile("Estimate the time")).click()
        page.get_by_text(re.compile("Estimated time on cpu")).wait_for(timeout=120_000)
        shot(page, "loop-4-train-estimate")
        page.get_by_role("button", name=re.compile("^Launch")).click()
        page.get_by_text(re.compile("Launched.*w22")).wait_for()
        deadline = time.time() + 300
        while RunFolder(runs, "w22").read_status().get("state") not in ("completed", "failed") and \
                time.time() < deadline:
            time.sleep(1)
        assert RunFolder(runs, "w22").read_status()["state"] == "completed", RunFolder(runs, "w22").log_tail()
        cfg = RunFolder(runs, "w22").read_config()
        assert (cfg["sampler"], cfg["drop_borderline"], cfg["loss"], cfg["model"]) == ("class", 3, "combo", "resnet10t")
        assert isinstance(cfg["augment"], dict)  # the saved spec, carried into the run
        page.locator("[data-testid='stMarkdown']", has_text=re.compile(r"w22.*completed")).first.wait_for()
        shot(page, "loop-5-train-done")

        go(page, "Evaluate")
        page.get_by_text("Likely label errors").wait_for()
        grid = page.locator(".st-key-eval_queue [data-testid='stDataFrameResizable']").first
        grid.scroll_into_view_if_needed()
        wait_idle(page)
        for row in (0, 1):  # a user ticks two suggestions in the table, then accepts both at once
            page.mouse.click(*grid_cell(page, grid, row))
            wait_idle(page)
        accept = page.get_by_role("button", name="Accept 2 picked")
        accept.wait_for()
        accept.click()
        page.get_by_text(re.compile(r"Accepted 2 into reviewed\.csv")).wait_for()
        page.get_by_text(re.compile(r"Accepted 2 into reviewed\.csv")).scroll_into_view_if_needed()
        shot(page, "loop-6-evaluate")
        from maskcls.data.corrections import reviewed_ids
        assert len(reviewed_ids(runs / "corrections" / "reviewed.csv")[0]) == 2

        go(page, "Ensemble")
        page.get_by_role("button", name="Score on validation").click()
        page.get_by_text(re.compile("Ensemble against its best member")).wait_for(timeout=120_000)
        page.get_by_role("button", name="Predict the eval set").click()
        page.get_by_role("button", name=re.compile("Download submission CSV")).wait_for(timeout=120_000)
        page.get_by_label("Public score").fill("0.4321")
        page.get_by_label("Public score").press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Record").click()
        page.get_by_text(re.compile(r"public score 0\.4321 recorded")).wait_for(timeout=120_000)
        page.get_by_text(re.compile(r"^Final: ")).first.wait_for()
        page.get_by_text("Validation macro F1 (95 % interval) against the public score").first.wait_for()
        page.get_by_text(re.compile(r"^Final: ")).first.scroll_into_view_if_needed()
        shot(page, "loop-7-ensemble")

        go(page, "Report")
        page.get_by_role("button", name="Build the report").click()
        page.get_by_text(re.compile("^Built: ")).wait_for(timeout=180_000)
        report = page.frame_locator("iframe").first
        report.get_by_text(re.compile("Leaderboard log")).first.wait_for()
        report.get_by_text("reviewed").first.wait_for()
        report.get_by_text(re.compile("Leaderboard log")).first.scroll_into_view_if_needed()
        shot(page, "loop-8-report")
