"""Tests of demo."""

import pytest
import numpy as np
import pandas as pd

from conftest import reference_lines
from maskcls.cli import main
from maskcls.data.demo import REAL_STRATA, write_demo
from maskcls.data.index import FOLDER_RE, index_data


def test_photo_like_demo_images_cost_what_photos_cost(tmp_path):
    assert main(["demo-data", str(tmp_path / "drawn"), "--people", "4", "--eval-people", "0", "--quiet"]) == 0
    assert main(["demo-data", str(tmp_path / "photo"), "--people", "4", "--eval-people", "0", "--photo",
                 "--quiet"]) == 0
    sizes = {kind: np.mean([p.stat().st_size for p in (tmp_path / kind / "train/images").rglob("*.jpg")])
             for kind in ("drawn", "photo")}
    assert sizes["photo"] >= 50_000 and sizes["photo"] >= 3 * sizes["drawn"], sizes  # a 384x512 photo: ~70 KB


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
    per_person = labels.groupby("person")["ans"]  # the truth names who is in each photo: 7 photos, one gender x age
    assert per_person.size().eq(7).all() and per_person.ngroups == 15
    assert per_person.apply(lambda a: len(set(a % 6))).eq(1).all()
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


def test_a_larger_eval_set_keeps_the_training_people(tmp_path):
    """docs/performance.md scores runs of the studio demo on a 1,000-person eval set written with the same --people
    and --seed: that only means anything if the training images are the same bytes."""
    write_demo(tmp_path / "a", people=4, eval_people=1, seed=7, workers=1)
    write_demo(tmp_path / "b", people=4, eval_people=3, seed=7, workers=1)
    train = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a/train").rglob("*") if p.is_file())
    assert len(train) == 29 and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in train)
    assert len(pd.read_csv(tmp_path / "b/eval/labels.csv")) == 21


def test_demo_data_never_writes_over_a_dataset_or_another_demo(tmp_path, capsys):
    """A demo written into a real data root would overwrite its train.csv and eval/info.csv and mix drawn people
    into it; resumed with other parameters it would mix two demos. Both are refused and nothing is touched; the
    same demo resumes."""
    real = tmp_path / "real"
    (real / "train/images/000001_female_Asian_45").mkdir(parents=True)
    (real / "eval/images").mkdir(parents=True)
    (real / "train/train.csv").write_text("id,gender,race,age,path\n000001,female,Asian,45,000001_female_Asian_45\n")
    (real / "eval/info.csv").write_text("ImageID,ans\ncbc5c6e168e63498590db46022617123f1fe1268.jpg,0\n")
    before = {p: p.read_bytes() if p.is_file() else None for p in real.rglob("*")}
    assert main(["demo-data", str(real), "--people", "2", "--eval-people", "1", "--quiet"]) == 2
    assert "is not empty (eval, train) and holds no maskcls demo; expected a new or empty folder" in \
        capsys.readouterr().err
    assert {p: p.read_bytes() if p.is_file() else None for p in real.rglob("*")} == before

    demo = tmp_path / "demo"
    assert main(["demo-data", str(demo), "--people", "2", "--eval-people", "1", "--quiet"]) == 0
    assert '"drawn_people": 3' in capsys.readouterr().out
    assert main(["demo-data", str(demo), "--people", "2", "--eval-people", "1", "--quiet"]) == 0  # resumes
    assert '"drawn_people": 0' in capsys.readouterr().out
    files = sorted(demo.rglob("*"))
    assert main(["demo-data", str(demo), "--people", "3", "--eval-people", "1", "--seed", "4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds a demo generated with generator" in err and "people 2, eval_people 1, seed 0" in err
    assert "people 3, eval_people 1, seed 4" in err and sorted(demo.rglob("*")) == files
    assert index_data(demo).problems.empty and len(index_data(demo).train) == 14

    (tmp_path / "a-file").write_text("x")
    assert main(["demo-data", str(tmp_path / "a-file"), "--quiet"]) == 2
    assert "is a file; expected a new or empty folder" in capsys.readouterr().err


@pytest.mark.slow
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
    ids = reference_lines("eval_image_ids.txt")[:14]
    (tmp_path / "eval_image_ids.txt").write_text("\n".join(ids))  # beside the listing: taken without being named
    write_demo(tmp_path / "e", from_listing=tmp_path / "l.txt", workers=1)
    assert pd.read_csv(tmp_path / "e/eval/info.csv", dtype=str)["ImageID"].tolist() == ids
