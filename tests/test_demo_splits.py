"""The demo generator (layout, determinism, proportions, speed) and the person-level split."""

import numpy as np
import pandas as pd
import pytest

from conftest import reference_lines
from maskcls.data.index import FOLDER_RE, index_data
from maskcls.data.demo import REAL_STRATA, write_demo
from maskcls.data.splits import class_shares, leaked_people, split_by_person, split_random_images


def test_demo_layout_is_the_competition_layout(demo_root):
    folders = sorted((demo_root / "train/images").iterdir())
    assert len(folders) == 60
    for f in folders:
        assert FOLDER_RE.match(f.name) and f.name.split("_")[2] == "Asian"
        assert sorted(p.stem for p in f.iterdir()) == sorted(
            ["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"])
    csv = pd.read_csv(demo_root / "train/train.csv", dtype=str)
    assert list(csv.columns) == ["id", "gender", "race", "age", "path"] and len(csv) == 60
    info = pd.read_csv(demo_root / "eval/info.csv", dtype={"ImageID": str})
    assert list(info.columns) == ["ImageID", "ans"] and (info["ans"] == 0).all() and len(info) == 15 * 7
    labels = pd.read_csv(demo_root / "eval/labels.csv", dtype={"ImageID": str})
    assert labels["ImageID"].tolist() == info["ImageID"].tolist() and labels["ans"].between(0, 17).all()
    from PIL import Image
    with Image.open(next(folders[0].iterdir())) as im:
        assert im.size == (384, 512)
    idx = index_data(demo_root)
    assert idx.problems.empty and len(idx.train) == 420


def test_demo_is_deterministic_for_a_seed(tmp_path):
    a = write_demo(tmp_path / "a", people=4, eval_people=1, seed=7, workers=1)
    b = write_demo(tmp_path / "b", people=4, eval_people=1, seed=7, workers=2)
    c = write_demo(tmp_path / "c", people=4, eval_people=1, seed=8, workers=1)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a/train/train.csv").read_text() != (tmp_path / "c/train/train.csv").read_text()
    assert a["images"] == b["images"] == c["images"] == 28


def test_demo_proportions_follow_the_real_data(studio_demo):
    t = index_data(studio_demo).train
    people = t.drop_duplicates("person_id")
    strata = np.bincount(people["gender"] * 3 + people["age_band"], minlength=6) / len(people)
    assert np.abs(strata - REAL_STRATA / REAL_STRATA.sum()).max() < 0.05
    assert (t.groupby("person_id")["mask"].apply(lambda m: tuple(np.bincount(m, minlength=3))) == (5, 1, 1)).all()
    assert people["age"].between(18, 60).all() and set(people.loc[people["age_band"] == 2, "age"]) == {60}


def test_demo_from_the_real_listing(tmp_path):
    listing = reference_lines("train_image_paths.txt")[:140]
    (tmp_path / "l.txt").write_text("\n".join(listing))
    write_demo(tmp_path / "d", from_listing=tmp_path / "l.txt", workers=2)
    made = sorted(str(p.relative_to(tmp_path / "d")) for p in (tmp_path / "d/train/images").rglob("*.*"))
    assert made == sorted(listing)


def test_person_split_has_no_overlap_and_matching_class_shares(studio_demo):
    t = index_data(studio_demo).train
    is_val = split_by_person(t, 0.2, 42)
    assert leaked_people(t, is_val) == 0
    assert abs(t.loc[is_val, "person_id"].nunique() / t["person_id"].nunique() - 0.2) < 0.02
    shares = class_shares(t, is_val)
    assert (shares["train"] - shares["validation"]).abs().max() <= 2.0
    assert leaked_people(t, split_random_images(t, 0.2, 42)) > 100  # the leaky split, for contrast


def test_person_split_on_the_real_layout(real_layout):
    t = index_data(real_layout).train
    is_val = split_by_person(t, 0.2, 42)
    assert leaked_people(t, is_val) == 0
    assert (class_shares(t, is_val).diff(axis=1)["validation"].abs()).max() <= 2.0
    # the duplicated id 003397 (two folders) stays on one side
    assert t.loc[t["person_id"] == "003397"].index.map(lambda i: is_val[i]).nunique() == 1


def test_k_folds_cover_everyone_once(studio_demo):
    t = index_data(studio_demo).train
    folds = [split_by_person(t, 0.2, 3, fold=k, n_folds=5) for k in range(5)]
    assert (np.sum(folds, axis=0) == 1).all()
    for f in folds:
        assert leaked_people(t, f) == 0
    with pytest.raises(ValueError, match="fold must be in 0..4"):
        split_by_person(t, 0.2, 3, fold=5, n_folds=5)
