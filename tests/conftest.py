"""Shared fixtures: the real dataset's layout with tiny images, and a small generated demo dataset."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # pretrained downloads fail at once, not after a timeout
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def studio_demo(tmp_path_factory) -> Path:
    """The studio's own demo dataset, generated once into a private MASKCLS_CACHE for the whole session."""
    from maskcls.data.demo import ensure_demo
    cache = tmp_path_factory.mktemp("cache")
    os.environ["MASKCLS_CACHE"] = str(cache)
    return ensure_demo()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    from maskcls.train.driver import train_from_config
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
    train_from_config(cfg, base / "runs", "demo")
    return base / "runs", "demo", flipped
