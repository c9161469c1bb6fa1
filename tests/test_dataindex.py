import json

import numpy as np
import pytest

from maskcls.cli import main
from maskcls.data.corrections import load_corrections
from maskcls.data.index import DataRootError, index_data, with_bounds
from maskcls.data.labels import AgeBounds

REAL_CLASS_COUNTS = [2745, 2050, 415, 3660, 4085, 545, 549, 410, 83, 732, 817, 109, 549, 410, 83, 732, 817, 109]


def test_real_layout_is_indexed_with_its_quirks(real_layout):
    idx = index_data(real_layout)
    assert idx.train["folder"].nunique() == 2700
    assert len(idx.train) == 18900 - 1  # the corrupt mask3 is skipped
    skipped = idx.skipped
    assert len(skipped) == 3
    assert skipped["reason"].str.contains("AppleDouble").sum() == 2
    assert skipped["path"].str.endswith("000004_male_Asian_54/mask3.jpg").any()
    missing = idx.problems[idx.problems["kind"] == "missing"]
    assert list(missing["path"].str.contains("000004_male_Asian_54/mask3")) == [True]
    ext = idx.train["file"].str.rsplit(".", n=1).str[1].value_counts()
    assert ext["jpg"] == 18035 - 1 and ext["jpeg"] == 354 and ext["png"] == 511
    assert (idx.train["person_id"] == "001498-1").sum() == 7
    assert idx.train.loc[idx.train["person_id"] == "003397", "folder"].nunique() == 2
    counts = np.bincount(idx.train["label"], minlength=18)
    expected = np.array(REAL_CLASS_COUNTS)
    expected[1] -= 1  # 000004 male 54 lost one wear image
    assert counts.tolist() == expected.tolist()


def test_age_bounds_flow_through_labels(real_layout):
    idx = index_data(real_layout)
    moved = with_bounds(idx, AgeBounds(30, 58))
    old = (idx.train["age_band"] == 2).sum()
    new = (moved.train["age_band"] == 2).sum()
    assert new == old + 7 * (159 + 85)  # people aged 58 and 59 move to the top band


def test_community_corrections_apply(real_layout):
    idx = index_data(real_layout, corrections=load_corrections("community"))
    t = idx.train
    assert set(t.loc[t["person_id"] == "004432", "gender"]) == {1}
    assert set(t.loc[t["person_id"] == "006359", "gender"]) == {0}
    swapped = t[(t["person_id"] == "000020")].set_index("file")["mask"]
    assert swapped["incorrect_mask.jpg"] == 2 and swapped["normal.jpg"] == 1 and swapped["mask1.jpg"] == 0


def test_bad_corrections_name_the_line(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("id,gender\n000001,robot\n")
    with pytest.raises(ValueError, match="line 2.*gender"):
        load_corrections(bad)


def test_eval_in_info_order_with_missing_reported(demo_root, tmp_path):
    idx = index_data(demo_root)
    info = (demo_root / "eval/info.csv").read_text().splitlines()[1:]
    assert idx.eval["image_id"].tolist() == [line.split(",")[0] for line in info]
    assert idx.eval["exists"].all() and idx.eval["label"].notna().all()


@pytest.mark.parametrize("make,expect", [
    (lambda p: p / "nope", "does not exist"),
    (lambda p: p, "not in the competition layout"),
    (lambda p: (p / "train/images").mkdir(parents=True) or p, "no person folders"),
])
def test_unusable_roots_say_why(tmp_path, make, expect):
    with pytest.raises(DataRootError, match=expect):
        index_data(make(tmp_path))


def test_unparsable_folder_and_bad_files_are_reported(tmp_path, demo_root):
    import shutil
    root = tmp_path / "d"
    shutil.copytree(demo_root / "train", root / "train")
    first = sorted((root / "train/images").iterdir())[0]
    shutil.copytree(first, root / "train/images/not_a_person")
    (first / "normal.jpg").write_bytes(b"")
    (first / "notes.txt").write_text("hello")
    idx = index_data(root)
    reasons = dict(zip(idx.skipped["path"].str.split("/train/images/").str[1], idx.skipped["reason"]))
    assert "does not parse" in reasons["not_a_person"]
    assert "0 bytes" in reasons[f"{first.name}/normal.jpg"]
    assert "not an image" in reasons[f"{first.name}/notes.txt"]


def test_scan_cli_json(real_layout, capsys):
    assert main(["scan", str(real_layout), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"people", "images", "class_counts", "eval_images", "skipped", "seconds"} <= set(out)
    assert out["people"] == 2700 and len(out["skipped"]) == 3


def test_scan_cli_wrong_root(tmp_path, capsys):
    assert main(["scan", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
