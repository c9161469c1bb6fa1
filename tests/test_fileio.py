"""Tests of fileio."""
import os
import stat
import subprocess
import sys

import numpy as np
from hypothesis import given, settings, strategies as st

from conftest import REPO
from maskcls.common.checkpoints import save_checkpoint
from maskcls.common.fileio import write_text
from maskcls.common.runfolder import RunFolder
from maskcls.infer.submission import write_submission


DISK_FULL = r"""
import resource, signal, sys
import numpy as np
from maskcls.common.runfolder import RunFolder, predictions_frame
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
run = RunFolder(sys.argv[1], "r")
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # the disk is "full" past 20 kB
n = 2000
try:
    run.write_predictions(predictions_frame(["x.jpg"] * n, ["1"] * n, [0] * n, np.full((n, 18), 1 / 18)))
except OSError as e:
    print(e)
"""


# 6 ------------------------------------------------------------------------------------------------------------
def test_files_get_the_mode_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.json", "{}")
        save_checkpoint(tmp_path / "c.pt", {"model": {}, "epoch": 1})
        write_submission(tmp_path / "s.csv", ["x"], np.full((1, 18), 1 / 18, np.float32))
        os.umask(0o027)
        write_text(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a.json": 0o644, "c.pt": 0o644, "s.csv": 0o644, "s.probs.csv": 0o644, "b.json": 0o640}


def test_full_disk_keeps_the_previous_predictions(tmp_path):
    run = RunFolder(tmp_path, "r")
    run.path.mkdir()
    run.predictions_path.write_text("path,person_id,label\nold.jpg,1,0\n")
    out = subprocess.run([sys.executable, "-c", DISK_FULL, str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert "could not write" in out.stdout and "val_predictions.csv" in out.stdout
    assert "File too large" in out.stdout and "previous version of the file is intact" in out.stdout
    assert run.predictions_path.read_text() == "path,person_id,label\nold.jpg,1,0\n"
    assert not [p for p in os.listdir(run.path) if p.endswith(".tmp")]


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
                    max_leaves=10))
def test_json_output_is_strict_json_whatever_the_numbers(obj):
    """Issue 35 #12: `review --json` printed bare NaN. Every JSON the CLI prints or a run folder stores goes through
    fileio.dumps: NaN and infinities become null, the rest is unchanged."""
    import json
    import math

    from maskcls.common.fileio import dumps

    def strict(constant):
        raise ValueError(constant)
    back = json.loads(dumps(obj), parse_constant=strict)

    def same(a, b):
        if isinstance(a, float) and not math.isfinite(a):
            return b is None
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
        return a == b
    assert same(obj, back)
