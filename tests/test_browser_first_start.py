"""First start in a real browser: the demo data is generated once, by one detached process, and a user who
clicks around while it runs sees the same count on every page, never going back."""
import contextlib
import json
import re
import time

import pytest

from conftest import chromium_page, needs_chromium, running_studio, script_running, shot

pytestmark = [pytest.mark.browser, needs_chromium]
PROGRESS = re.compile(r"Generating demo data \(first start only\): (\d+)/(\d+) people")


@pytest.fixture
def fresh_server(tmp_path):
    """A studio whose cache holds no demo data yet."""
    cache = tmp_path / "cache"
    with running_studio(MASKCLS_CACHE=str(cache), MASKCLS_RUNS=str(tmp_path / "runs")) as (url, _):
        yield url, cache
    from maskcls.data.demo import DemoGeneration, demo_progress
    for folder in cache.glob("demo-*"):  # a generator this test's studio started never outlives the test
        if demo_progress(folder)["running"]:
            with contextlib.suppress(ValueError):  # it ended between the look and the cancel
                DemoGeneration(folder).cancel()


def read_count(page) -> tuple[int, int] | None:
    """The progress bar's count, or None once the page shows the data instead."""
    deadline = time.time() + 30
    while time.time() < deadline:
        text = page.inner_text("body")
        m = PROGRESS.search(text)
        if m:
            return int(m.group(1)), int(m.group(2))
        if "Generating" not in text and page.locator("[data-testid='stHeading']").count() \
                and not script_running(page):
            return None  # the page has run to its end with the data in place
        time.sleep(0.2)
    raise AssertionError("neither the generation progress nor the data appeared")


def generated(cache) -> bool:
    """The generator's own end marker (written after its last progress): a page caught between two reruns can look
    finished, the folder cannot."""
    return any((f / ".complete").exists() for f in cache.glob("demo-*"))


def test_page_switches_during_first_start_neither_restart_nor_duplicate(fresh_server):
    url, cache = fresh_server
    counts = []
    with chromium_page() as page:
        page.goto(url)
        counts.append(read_count(page))
        for name in ("Data", "Augment", "Train", "Home", "Data", "reload", "Evaluate", "Home"):
            if name == "reload":
                page.reload()
            else:
                page.locator("[data-testid='stSidebarNav'] a", has_text=name).first.click()
            page.wait_for_timeout(700)
            counts.append(read_count(page))
        deadline, moved = time.time() + 900, time.time()  # however slow this machine, as long as the count moves
        while not (counts[-1] is None and generated(cache)) and time.time() < deadline and time.time() - moved < 90:
            page.wait_for_timeout(1000)
            counts.append(read_count(page))
            if counts[-1] is not None and counts[-2] is not None and counts[-1][0] > counts[-2][0]:
                moved = time.time()
        assert counts[-1] is None and generated(cache), f"the generation stalled or outlasted 15 minutes: {counts[-5:]}"
        page.get_by_text("synthetic demo data").first.wait_for()
        shot(page, "0-first-start-done")
    seen = [c for c in counts if c is not None]
    assert seen, counts  # a page visit happened while it was generating (how many depends on this machine's speed)
    done = [d for d, _ in seen]
    assert done == sorted(done), f"the count went back: {done}"
    folders = [f for f in cache.iterdir() if f.name.startswith("demo-")]
    assert len(folders) == 1
    state = json.loads((folders[0] / "generation.json").read_text())
    total = seen[0][1]
    assert state["runs"] == 1 and state["drawn"] == total and state["done"] == total, state
    assert (folders[0] / ".complete").exists()
