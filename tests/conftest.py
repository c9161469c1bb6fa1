"""Shared fixtures: the real dataset's layout with tiny images, and a small generated demo dataset."""
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the suite runs on pytest-xdist workers (pyproject's addopts): they share the cores, so each trains with its
    # share of the threads (set before anything imports torch); jobs the tests start inherit the cap
    _SHARE = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)))
    os.environ.setdefault("MASKCLS_THREADS", _SHARE)
    os.environ.setdefault("OMP_NUM_THREADS", _SHARE)

# the smallest run config that trains in seconds on the demo data: timm's test_resnet at 64x48, one epoch
TINY = dict(model="test_resnet", pretrained=False, image_size=[64, 48], batch_size=16, epochs=1, lr=1e-3, workers=1)


def tiny(demo_root, tmp_path, **kw):
    """A TINY RunConfig on `demo_root`, its decoded images cached under `tmp_path`."""
    from maskcls.train.config import RunConfig
    return RunConfig.from_dict({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "cache"), **kw})


def config_file(demo_root, tmp_path, **kw) -> str:
    """A TINY config as a JSON file (what `train --config` and `jobs submit` read)."""
    import json
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "cache"), **kw}))
    return str(path)


class Payload:
    def __reduce__(self):
        return (print, ("payload ran",))


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """`maskcls ARGS` in this process: (exit code, stdout, stderr)."""
    from maskcls.cli import main
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def reference_lines(name: str) -> list[str]:
    """A listing the repository carries (maskcls/reference/): the real training paths or eval ids."""
    from maskcls.data.reference import read_listing
    return read_listing(name)


def _tiny(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 8), (120, 90, 60)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def real_layout(tmp_path_factory) -> Path:
    """All 18,900 real training paths with tiny images, plus AppleDouble files and one corrupt image."""
    root = tmp_path_factory.mktemp("real")
    data = {"jpg": _tiny("JPEG"), "jpeg": _tiny("JPEG"), "png": _tiny("PNG")}
    made = set()
    for line in reference_lines("train_image_paths.txt"):
        path = root / line
        if path.parent not in made:
            path.parent.mkdir(parents=True)
            made.add(path.parent)
        path.write_bytes(data[path.suffix[1:].lower()])
    first = root / "train/images/000001_female_Asian_45"
    (first / "._mask1.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "train/images/000002_female_Asian_52/._normal.jpg").write_bytes(b"\x00\x05\x16\x07")
    (root / "train/images/000004_male_Asian_54/mask3.jpg").write_bytes(b"this is not a jpeg")
    return root


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A small demo dataset (60 people, 15 eval people) shared by the tests that only read it."""
    from maskcls.data.demo import write_demo
    root = tmp_path_factory.mktemp("demo")
    write_demo(root, people=60, eval_people=15, seed=3, workers=2)
    return root


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's file scheduling (`--dist=loadfile` in pyproject: a file's module fixtures are built once), with
    every file that uses the shared trained run as one unit on one worker: the other worker never sits waiting for
    that training."""
    if config.getvalue("dist") != "loadfile":
        return None
    import re

    from xdist.scheduler import LoadFileScheduling
    here = Path(__file__).parent
    texts = {str(p.relative_to(here.parent)): p.read_text() for p in here.rglob("test_*.py")}
    trained = {Path(f).name for f, text in texts.items() if "trained_run" in text}

    def tier(scope: str) -> int:
        """How heavy a unit is likely to be: the trained run's files, then whole files of slow or browser tests
        (servers, training, Chromium), then files with some slow tests, then the rest."""
        if scope == "trained-run":
            return 3
        text = texts.get(scope, "")
        if re.search(r"^pytestmark = .*(slow|browser)", text, re.M):
            return 2
        return 1 if "mark.slow" in text else 0

    class TrainedRunTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return "trained-run" if Path(file).name in trained else file

        def _assign_work_unit(self, node) -> None:
            """The heaviest unit left goes first (xdist orders by test count alone, which sent a one-test file of
            four minutes last and left one worker idle at the end)."""
            heaviest = max(self.workqueue, key=lambda scope: (tier(scope), len(self.workqueue[scope])))
            self.workqueue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    return TrainedRunTogether(config, log)


def shared_dir(tmp_path_factory, name: str) -> Path:
    """A folder all xdist workers of this session share (their base temps' parent), or a private one without
    xdist."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.getbasetemp().parent / name
        folder.mkdir(exist_ok=True)
        return folder
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session")
def studio_demo(tmp_path_factory) -> Path:
    """The studio's own demo dataset, generated once into a private MASKCLS_CACHE for the whole session (shared by
    the xdist workers: the second waits for the first's generation; the variable is restored when the session
    ends: no test leaks it)."""
    from maskcls.data.demo import ensure_demo
    cache = shared_dir(tmp_path_factory, "cache")
    before = os.environ.get("MASKCLS_CACHE")
    os.environ["MASKCLS_CACHE"] = str(cache)
    try:
        yield ensure_demo()
    finally:
        if before is None:
            os.environ.pop("MASKCLS_CACHE", None)
        else:
            os.environ["MASKCLS_CACHE"] = before


@pytest.fixture(scope="session")
def tiny_run(demo_root, tmp_path_factory):
    """The one small trained run the tests share (two TINY epochs through the CLI): (runs root, name). Tests
    that change it work on a copy (`copy_run`)."""
    base = tmp_path_factory.mktemp("tiny-run")
    from maskcls.cli import main
    assert main(["train", "--config", config_file(demo_root, base, epochs=2), "--runs-root", str(base / "runs"),
                 "--name", "done", "--quiet"]) == 0
    return base / "runs", "done"


def copy_run(run: tuple, tmp_path) -> tuple[Path, str]:
    """A copy of a (runs root, name) run under tmp_path/runs, for a test that damages or changes it."""
    import shutil
    runs, name = run
    shutil.copytree(runs / name, tmp_path / "runs" / name, ignore=shutil.ignore_patterns(".*.lock"))
    return tmp_path / "runs", name


from maskcls.bench.servers import free_port  # noqa: E402  (after the thread caps above)

PG_PASSWORD = "s3cret-pw"  # the throwaway servers' password: tests check it never lands in a file


@contextmanager
def postgres_server(*databases: str):
    """A throwaway PostgreSQL server (maskcls.bench.servers) with `databases` created; yields (host, port, user).
    Skips the test where PostgreSQL is not installed."""
    from maskcls.bench.servers import ServerUnavailable, postgres_bin, throwaway_postgres
    try:
        postgres_bin()
    except ServerUnavailable as e:
        pytest.skip(str(e))
    pytest.importorskip("psycopg", reason="psycopg (requirements.txt) is needed to reach PostgreSQL")
    with throwaway_postgres(*databases, password=PG_PASSWORD) as server:
        yield server


TEAM_ADMIN, TEAM_PW = "alice", "team-pw-7Hq2"  # the throwaway team store's first user (its basic-auth admin)


class TeamStore:
    """A real team store for a test: `maskcls team serve`'s own start_store on a PostgreSQL database, MLflow's
    basic-auth app on; `kill()` and `start()` for the fault tests."""

    def __init__(self, backend: str, folder: Path):
        self.backend, self.folder, self.port, self.proc = backend, folder, free_port(), None
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self):
        from maskcls.orchestration.team.serve import start_store
        self.proc = start_store(self.backend, self.folder / "artifacts", port=self.port, auth=True)

    def kill(self):
        import signal
        os.killpg(self.proc.pid, signal.SIGKILL)  # the group start_store made for this test's server
        self.proc.wait(30)


TEAM_ENV = {"MASKCLS_STORAGE_PASSWORD": PG_PASSWORD, "MLFLOW_TRACKING_USERNAME": TEAM_ADMIN,
            "MLFLOW_TRACKING_PASSWORD": TEAM_PW, "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


@contextmanager
def team_store(folder: Path, *databases: str):
    """A PostgreSQL server with a `store` database (and `databases`) and a team store on it, the credentials in
    this process's environment while it runs; yields (store, (host, port, user))."""
    saved = {k: os.environ.get(k) for k in [*TEAM_ENV, "MASKCLS_TEAM"]}
    os.environ.update(TEAM_ENV)
    try:
        with postgres_server("store", *databases) as (host, port, user):
            store = TeamStore(f"postgresql://{user}@{host}:{port}/store", folder)
            store.start()
            os.environ["MASKCLS_TEAM"] = store.uri
            try:
                yield store, (host, port, user)
            finally:
                if store.proc.poll() is None:
                    store.kill()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@contextmanager
def running_studio(cwd: Path = REPO, **env):
    """`streamlit run dashboard/Home.py` as a user starts it (from `cwd`, with `env` added); yields (url, port)
    once it answers its health check, and stops its whole process group afterwards."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "Home.py"),
                             "--server.port", str(port)], cwd=cwd, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            os.killpg(proc.pid, 9)
            raise RuntimeError("streamlit did not start:\n" + proc.stdout.read().decode())
        yield url, port
    finally:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        proc.wait(10)


def app_test(page: str | None = None, **state):
    """An AppTest of the studio (optionally switched to `page`, e.g. 'pages/data.py'), with session state set."""
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(REPO / "dashboard" / "Home.py"), default_timeout=60)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(str(REPO / page))
        at.run()
    return at


FLIPPED = 10  # validation people whose gender the trained_run fixture flips on purpose


@pytest.fixture(scope="session")
def trained_run(studio_demo, tmp_path_factory):
    """A small real run on the studio demo data, with 10 validation people's gender flipped by a corrections CSV.

    Returns (runs_root, run name, flipped person ids).
    """
    import numpy as np
    import pandas as pd

    from maskcls.train.config import create_config
    from maskcls.data.index import index_data
    from maskcls.data.splits import split_by_person
    from maskcls.train.driver import train_run
    base = tmp_path_factory.mktemp("trained")
    from maskcls.data.corrections import load_corrections
    train = index_data(studio_demo).train
    genders = train.drop_duplicates("person_id").set_index("person_id")["gender"]
    rng = np.random.default_rng(0)

    def flips(ids):
        return pd.DataFrame({"id": ids, "gender": ["female" if genders[p] == 0 else "male" for p in ids],
                             "age": "", "swap_mask": 0, "note": "flipped on purpose"})
    # flipping changes a person's stratum and so the split: pick people who stay in validation once flipped
    flipped = list(rng.choice(sorted(train.loc[split_by_person(train, 0.2, 42), "person_id"].unique()), FLIPPED,
                              replace=False))
    for _ in range(50):
        flips(flipped).to_csv(base / "flips.csv", index=False)
        corrected = index_data(studio_demo, corrections=load_corrections(base / "flips.csv")).train
        val = set(corrected.loc[split_by_person(corrected, 0.2, 42), "person_id"])
        if set(flipped) <= val:
            break
        keep = [p for p in flipped if p in val]
        flipped = keep + list(rng.choice(sorted(val - set(keep)), FLIPPED - len(keep), replace=False))
    assert set(flipped) <= val, "could not place the flipped people in validation"
    cfg = create_config("demo-cpu", data_root=str(studio_demo), corrections=str(base / "flips.csv"),
                        image_size=[64, 48], epochs=6, cache_dir=str(base / "cache"))
    train_run(cfg, base / "runs", "demo")
    return base / "runs", "demo", flipped


def wait_until(predicate, timeout: float = 120.0, what: str = "the condition", poll: float = 0.2):
    """Poll `predicate` until it returns something true (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll)


# -- background jobs -------------------------------------------------------------------------------------------
def wait_job(runs, name: str, states, timeout: float = 120.0):
    """A run's JobInfo once its state is one of `states` (AssertionError with its log tail after `timeout`)."""
    from maskcls.common.runfolder import RunFolder
    from maskcls.orchestration.jobs import job_info
    try:
        return wait_until(lambda: (i := job_info(RunFolder(runs, name))).state in states and i, timeout,
                          f"{name} to be {' or '.join(sorted(states))}")
    except AssertionError as e:
        raise AssertionError(f"{e}; log:\n{RunFolder(runs, name).log_tail()}") from None


def make_member(root, name, model="resnet10t", size=(128, 96), seed=0, state=None, **config):
    """A run folder with one randomly initialised best.pt (an ensemble member in seconds); `config` sets further
    RunConfig keys."""
    import torch

    from maskcls.common.checkpoints import save_checkpoint
    from maskcls.common.fileio import write_text
    from maskcls.common.runfolder import RunFolder
    from maskcls.data.labels import class_names
    from maskcls.infer.members import Member
    from maskcls.models.backbones import create_model
    from maskcls.train.config import RunConfig
    torch.manual_seed(seed)
    cfg = RunConfig(model=model, pretrained=False, image_size=list(size), **config)
    run = RunFolder(root, name)
    run.path.mkdir(parents=True, exist_ok=True)
    write_text(run.config_path, cfg.to_json())
    run.write_status(state="completed", epoch=1)
    net, _ = create_model(model)
    save_checkpoint(run.best_path, {"model": state or net.state_dict(), "config": cfg.to_dict(),
                                    "classes": class_names(), "epoch": 1})
    return Member(name)


# -- the real studio in headless Chromium -----------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# screenshots go outside the repository (no test writes into it); MASKCLS_TEST_ARTIFACTS moves them
ARTIFACTS = Path(os.environ.get("MASKCLS_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "maskcls-test-artifacts")
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")


@contextmanager
def chromium_page(width: int = 1400, height: int = 1000):
    """A Playwright page in Debian's headless Chromium."""
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True).new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


SCRIPT_STATE = "document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"


def script_running(page) -> bool:
    """Whether the app's script run is under way: the app root's data-test-script-state, which Streamlit's own
    end-to-end tests wait on (the status widget this used to watch is never drawn here, so 'idle' was a 300 ms
    sleep and a click could land mid-run)."""
    return page.evaluate(f"() => {SCRIPT_STATE} !== 'notRunning'")


def wait_idle(page):
    """Until the run the last action started has ended."""
    page.wait_for_timeout(300)
    page.wait_for_function(f"() => {SCRIPT_STATE} === 'notRunning'", timeout=120_000)


def choose(page, box, option: str, tries: int = 5) -> None:
    """Open a selectbox with the mouse and click `option`, as a user does; a click that lands while the page
    reruns (the list closes under the mouse) is tried again, as a user would. A screenshot names a failure."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    for _ in range(tries):
        wait_idle(page)
        box.click()
        item = page.get_by_role("option", name=option, exact=True)
        try:  # the list may close between seeing the option and clicking it: both are tried again
            item.wait_for(timeout=5000)
            item.click(timeout=5000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        return
    shot(page, f"choose-{option}-failed")
    raise AssertionError(f"the option {option!r} never opened in {tries} clicks (screenshot choose-{option}-failed)")


def go(page, name):
    """Click a page in the sidebar's navigation, as a user does."""
    page.locator("[data-testid='stSidebarNav'] a", has_text=name).first.click()
    wait_idle(page)


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
