"""Tests of submission."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_cli
from maskcls.infer.demo_score import demo_score, describe_demo_score
from maskcls.infer.submission import write_submission
from maskcls.train.intervals import macro_f1_interval


DISK_FULL = """
import resource, sys
import numpy as np
sys.path.insert(0, '.')
from maskcls.common.checkpoints import save_checkpoint
from maskcls.infer.submission import write_submission
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # the disk is "full" past 20 kB
try:
    save_checkpoint(sys.argv[1] + '/big.pt', {'model': {'w': np.zeros(100_000, np.float32)}, 'epoch': 1})
except OSError as e:
    print('CKPT', e.strerror)
try:
    write_submission(sys.argv[1] + '/sub.csv', ['x%d' % i for i in range(2000)], np.full((2000, 18), 1 / 18, np.float32))
except OSError as e:
    print('SUB', e.strerror)
"""


def test_a_submission_with_non_finite_probabilities_is_refused(tmp_path):
    probs = np.full((3, 18), 1 / 18, np.float32)
    probs[1, 4] = np.nan
    with pytest.raises(ValueError, match="not finite for 1 image"):
        write_submission(tmp_path / "s.csv", ["a", "b", "c"], probs)
    assert not list(tmp_path.iterdir())


def test_out_naming_a_folder_or_an_unwritable_place(demo_root, tmp_path, capsys):
    code, _, err = run_cli(capsys, "predict", "--data", str(demo_root), "--members", "x", "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err
    code, _, err = run_cli(capsys, "predict", "--data", str(demo_root), "--members", "x", "--out",
                           str(tmp_path / "nope" / "s.csv"))
    assert code == 2 and "does not exist" in err
    image = next((demo_root / "train/images").iterdir()) / "mask1.jpg"
    code, _, err = run_cli(capsys, "augment", "preview", str(image), "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err


@pytest.mark.parametrize("target, message", [
    ("eval/info.csv", "would overwrite the data's own eval/info.csv"),
    ("eval/labels.csv", "would overwrite the data's own eval/labels.csv"),
    ("train/train.csv", "would overwrite the data's own train/train.csv"),
    ("eval/images/s.csv", "is inside the data's eval/images folder"),
])
def test_out_never_overwrites_the_data(demo_root, capsys, target, message):
    """The submission and info.csv share their columns: `--out DATA/eval/info.csv` would replace the eval list."""
    before = {p: p.read_bytes() for p in (demo_root / "eval").glob("*.csv")}
    code, _, err = run_cli(capsys, "predict", "--data", str(demo_root), "--members", "x", "--out",
                           str(demo_root / target))
    assert code == 2 and message in err and "such as" in err and "eval/submission.csv" in err, err
    assert {p: p.read_bytes() for p in (demo_root / "eval").glob("*.csv")} == before


@pytest.mark.slow
def test_full_disk_names_the_file_and_keeps_the_previous_submission_pair(tmp_path):
    (tmp_path / "sub.csv").write_text("ImageID,ans\nold,1\n")
    (tmp_path / "sub.probs.csv").write_text("ImageID,p0\nold,1.0\n")
    out = subprocess.run([sys.executable, "-c", DISK_FULL.replace("np.zeros(100_000, np.float32)",
                                                                  "__import__('torch').zeros(100_000)"), str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert "could not write" in lines["CKPT"] and "big.pt" in lines["CKPT"], out
    assert "file too large" in lines["CKPT"] and "inline_container" not in lines["CKPT"]
    assert "could not write" in lines["SUB"] and "sub" in lines["SUB"]
    assert (tmp_path / "sub.csv").read_text() == "ImageID,ans\nold,1\n"
    assert (tmp_path / "sub.probs.csv").read_text() == "ImageID,p0\nold,1.0\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_the_demo_score_has_an_interval_over_eval_people_not_images():
    """Seven photos of one person are one draw: the interval resamples people, and an old demo whose truth names
    no people gets no interval rather than an image-level one that is too narrow."""
    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(40), 7)
    labels = np.repeat(rng.integers(0, 18, 40), 7)
    predicted = np.where(np.repeat(rng.random(40) < 0.8, 7), labels, (labels + 1) % 18)  # a person is right or wrong
    probs = np.eye(18)[predicted]
    table = pd.DataFrame({"label": labels, "person": people.astype(str)})
    score = demo_score(table, probs)
    lo, hi = score["macro_f1_ci"]
    assert score["people"] == 40 and lo < score["macro_f1"] < hi
    by_image = macro_f1_interval(labels, predicted, np.arange(len(labels))).ci
    assert hi - lo > 1.5 * (by_image[1] - by_image[0])
    assert "95 % interval over the 40 eval people" in describe_demo_score(score)
    old = demo_score(table.drop(columns="person"), probs)
    assert old["macro_f1"] == score["macro_f1"] and old["macro_f1_ci"] is None
    assert describe_demo_score(old).startswith("macro F1") and "interval" not in describe_demo_score(old)
