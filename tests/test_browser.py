"""The whole story in a real browser (Debian chromium via Playwright) against a running studio.

Home -> Data -> Augment (move a slider, the grid changes) -> Train (launch a small job, watch it finish)
-> Evaluate (click a cell of the confusion matrix with the mouse, open Grad-CAM) -> Ensemble (predict, download the CSV, check its rows).
Screenshots land in $MASKCLS_TEST_ARTIFACTS (default: <tmp>/maskcls-test-artifacts), one per page.
"""
import os
import re
import time

import pandas as pd
import pytest

from conftest import ARTIFACTS, chromium_page, go, needs_chromium, running_studio, shot, wait_idle
from maskcls.data.labels import class_names

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def server(studio_demo, tmp_path_factory):
    runs = tmp_path_factory.mktemp("browser-runs")
    with running_studio(MASKCLS_RUNS=str(runs), MASKCLS_CACHE=os.environ["MASKCLS_CACHE"]) as (url, _):
        yield url, runs


@pytest.fixture(scope="module")
def page(server):
    with chromium_page() as pg:
        yield pg


def grid_sources(page):
    return [img.get_attribute("src") for img in page.locator("[data-testid='stImage'] img").all()]


def test_the_whole_story(server, page, studio_demo):
    url, runs = server
    page.goto(url)
    page.get_by_text("maskcls studio").wait_for()
    page.get_by_text("synthetic demo data").first.wait_for()
    wait_idle(page)
    assert page.locator("[data-testid='stMetricValue']").first.inner_text() == "600"
    shot(page, "1-home")

    go(page, "Data")
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_text("Images per class").first.wait_for()
    shot(page, "2-data")

    go(page, "Augment")
    page.get_by_text(re.compile(r"Rendered 8 draws")).wait_for()
    before = grid_sources(page)
    assert len(before) == 9
    slider = page.locator("[data-testid='stSlider']", has_text="brightness").get_by_role("slider")
    for _ in range(6):
        slider.press("ArrowRight")
    deadline = time.time() + 30
    while time.time() < deadline:
        wait_idle(page)
        after = grid_sources(page)
        if len(after) == 9 and after[1:] != before[1:]:
            break
        time.sleep(0.5)
    assert after[0] == before[0] and after[1:] != before[1:], "the grid did not change after the slider moved"
    shot(page, "3-augment")

    go(page, "Train")
    page.get_by_label("Epochs", exact=True).fill("2")
    page.get_by_label("Image height").fill("64")
    page.get_by_label("Image width").fill("48")
    page.get_by_label("Run name").fill("browser-run")
    page.get_by_role("button", name=re.compile("Launch")).click()
    page.get_by_text(re.compile("Launched.*browser-run")).wait_for()
    page.locator("[data-testid='stMarkdown']", has_text=re.compile(r"browser-run.*(running|completed)")).first.wait_for(
        timeout=60_000)
    seen = set()
    deadline = time.time() + 240
    while time.time() < deadline:  # the fragment refreshes by itself: no reload here
        text = page.locator("[data-testid='stMarkdown']", has_text="browser-run").last.inner_text()
        seen.add(re.search(r"(\d+)%", text).group(1) if re.search(r"(\d+)%", text) else "")
        if "completed" in text:
            break
        time.sleep(1)
    assert "completed" in text, text
    assert len(seen) >= 3, f"progress never advanced on screen: {seen}"
    page.locator("[data-testid='stMarkdown']", has_text="browser-run").last.scroll_into_view_if_needed()
    shot(page, "4-train")

    go(page, "Evaluate")
    page.get_by_text("Errors of one cell").wait_for()
    preds = pd.read_csv(runs / "browser-run" / "val_predictions.csv")
    probs = preds[[f"p{i}" for i in range(18)]].to_numpy()
    wrong = preds["label"].to_numpy() != probs.argmax(1)
    true, pred = int(preds["label"][wrong].iloc[0]), int(probs[wrong].argmax(1)[0])
    n_cell = int(((preds["label"] == true) & (probs.argmax(1) == pred)).sum())
    names = class_names()
    chart = page.locator(".js-plotly-plot").first  # the 18-class confusion matrix
    chart.scroll_into_view_if_needed()
    cell = chart.locator(".scatterlayer .trace").first.locator("path.point").nth(true * 18 + pred)
    box = cell.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)  # a user hovers (the tooltip names the cell), then clicks
    page.get_by_text(f"predicted {names[pred]}").first.wait_for()
    page.mouse.click(x, y)
    wait_idle(page)
    page.get_by_text(f"{n_cell} image(s): true {names[true]}, predicted {names[pred]}").wait_for()
    for label, value in (("True class", true), ("Predicted class", pred)):  # the selectboxes followed the click
        shown = page.get_by_role("combobox", name=label).input_value()
        assert shown == f"{value}: {names[value]}", shown
    captions = page.get_by_text(re.compile(r"^#\d+ p=\d\.\d\d · \d+$"))  # one per gallery image
    deadline = time.time() + 20
    while captions.count() < min(n_cell, 12) and time.time() < deadline:
        time.sleep(0.3)
    assert captions.count() == min(n_cell, 12), (captions.count(), n_cell)
    page.get_by_text("Grad-CAM", exact=True).click()
    wait_idle(page)
    page.get_by_text(re.compile(r"^predicted: ")).first.wait_for()
    page.get_by_text(re.compile(r"^predicted: ")).first.scroll_into_view_if_needed()
    shot(page, "5-evaluate")

    go(page, "Ensemble")
    try:
        page.get_by_role("button", name="Predict the eval set").click()
    except Exception:
        shot(page, "6-ensemble-failed")
        raise
    page.get_by_role("button", name=re.compile("Download submission CSV")).wait_for(timeout=120_000)
    with page.expect_download() as dl:
        page.get_by_role("button", name=re.compile("Download submission CSV")).click()
    saved = ARTIFACTS / "submission.csv"
    dl.value.save_as(saved)
    sub = pd.read_csv(saved, dtype={"ImageID": str})
    info = pd.read_csv(studio_demo / "eval" / "info.csv", dtype={"ImageID": str})
    assert sub["ImageID"].tolist() == info["ImageID"].tolist() and sub["ans"].between(0, 17).all()
    page.get_by_text(re.compile(r"95 % interval over the 100 eval people: [01]\.\d{3}-[01]\.\d{3}")).wait_for()
    shot(page, "6-ensemble")
