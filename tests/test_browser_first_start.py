"""First start in a real browser: the demo data is generated once, by one detached process, and a user who
clicks around while it runs sees the same count on every page, never going back."""
import json
import os
import re
import time

import pytest

from conftest import REPO, running_studio
from test_browser import CHROMIUM

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
PROGRESS = re.compile(r"Generating demo data \(first start only\): (\d+)/(\d+) people")


@pytest.fixture
def fresh_server(tmp_path):
    """A studio whose cache holds no demo data yet."""
    with running_studio(MASKCLS_CACHE=str(tmp_path / "cache"), MASKCLS_RUNS=str(tmp_path / "runs")) as (url, _):
        yield url, tmp_path / "cache"


def read_count(page) -> tuple[int, int] | None:
    """The progress bar's count, or None once the page shows the data instead."""
    deadline = time.time() + 30
    while time.time() < deadline:
        text = page.inner_text("body")
        m = PROGRESS.search(text)
        if m:
            return int(m.group(1)), int(m.group(2))
        if "Generating" not in text and page.locator("[data-testid='stHeading']").count() \
                and not page.locator("[data-testid='stStatusWidget']").count():
            return None  # the page has run to its end with the data in place
        time.sleep(0.2)
    raise AssertionError("neither the generation progress nor the data appeared")


def test_page_switches_during_first_start_neither_restart_nor_duplicate(fresh_server):
    from playwright.sync_api import sync_playwright
    url, cache = fresh_server
    counts = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        counts.append(read_count(page))
        for name in ("Data", "Augment", "Train", "Home", "Data", "reload", "Evaluate", "Home"):
            if name == "reload":
                page.reload()
            else:
                page.locator("[data-testid='stSidebarNav'] a", has_text=name).first.click()
            time.sleep(0.7)
            counts.append(read_count(page))
        deadline = time.time() + 240
        while counts[-1] is not None and time.time() < deadline:
            time.sleep(1)
            counts.append(read_count(page))
        page.get_by_text("synthetic demo data").first.wait_for()
        page.screenshot(path=str(REPO / "test-artifacts" / "0-first-start-done.png"))
        browser.close()
    seen = [c for c in counts if c is not None]
    assert len(seen) >= 3, counts  # several page visits happened while it was generating
    done = [d for d, _ in seen]
    assert done == sorted(done), f"the count went back: {done}"
    folders = [f for f in cache.iterdir() if f.name.startswith("demo-")]
    assert len(folders) == 1
    state = json.loads((folders[0] / "generation.json").read_text())
    total = seen[0][1]
    assert state["runs"] == 1 and state["drawn"] == total and state["done"] == total, state
    assert (folders[0] / ".complete").exists()
