"""The Ladders page: a ladder created and run from the studio, and its waterfall opened with the mouse."""
import json

import pytest

from conftest import app_test, chromium_page, needs_chromium, running_studio, shot, wait_idle, wait_until
from maskcls.orchestration.ladder_report import ladder_status

pytestmark = pytest.mark.slow
STEPS = {"mode": "cumulative", "steps": [{"name": "class sampler", "set": {"sampler": "class"}},
                                         {"name": "smoothing", "set": {"loss": "smooth"}},
                                         {"name": "lower lr", "set": {"lr": 0.001}}]}


@pytest.fixture(scope="module")
def studio_ladder(demo_root, tmp_path_factory):
    """Three steps x two seeds of one-epoch runs, created and started from the page: (runs root, data root)."""
    runs = tmp_path_factory.mktemp("ladder-page") / "runs"
    at = app_test("pages/ladders.py", runs_root=str(runs), data_root=str(demo_root))
    at.text_input(key="ladder_name").input("studio")
    at.number_input(key="ladder_seeds").set_value(2)
    at.number_input(key="ladder_epochs").set_value(1)
    at.text_area(key="ladder_steps").input(json.dumps(STEPS))
    at.button[0].click().run()
    assert not at.exception and any("Created ladder" in s.value for s in at.success), [e.value for e in at.error]
    at.button(key="ladder_start").click().run()
    assert not at.exception
    wait_until(lambda: ladder_status(runs, "studio")["complete"], 900, "the studio's ladder to finish")
    return runs, demo_root


def test_a_ladder_runs_to_its_end_from_the_studio(studio_ladder):
    runs, demo_root = studio_ladder
    s = ladder_status(runs, "studio")
    assert len(s["rungs"]) == 4 and all(len(r["runs"]) == 2 for r in s["rungs"])
    assert all("verdict" in step for step in s["steps"])
    at = app_test("pages/ladders.py", runs_root=str(runs), data_root=str(demo_root))
    assert not at.exception and not at.error
    gains = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert gains["step"].tolist() == ["class sampler", "smoothing", "lower lr"]


@pytest.mark.browser
@needs_chromium
def test_the_waterfall_opens_a_step_with_the_mouse(studio_ladder):
    runs, demo_root = studio_ladder
    with running_studio(MASKCLS_RUNS=str(runs), MASKCLS_DATA=str(demo_root)) as (url, _), chromium_page() as page:
        page.goto(url + "/ladders")
        wait_idle(page)
        plot = page.locator(".js-plotly-plot").first
        plot.wait_for()
        box = page.locator(".js-plotly-plot .bars .point path").nth(0).bounding_box()  # the first step's bar
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # where a user clicks it
        wait_idle(page)
        page.wait_for_function("() => /class sampler: (no evidence|.* is better)/.test(document.body.innerText)")
        # three tables now: the rungs, the gains, and the classes the clicked step moved most
        page.wait_for_function("() => document.querySelectorAll(\"[data-testid='stDataFrame']\").length === 3")
        shot(page, "ladders-waterfall")
