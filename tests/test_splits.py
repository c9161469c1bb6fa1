"""Tests of splits."""
import numpy as np
import pytest

from maskcls.data.index import index_data
from maskcls.data.labels import AgeBounds
from maskcls.data.splits import (borderline, borderline_table, class_shares, leaked_people, prepare_split, split_by_person, split_random_images)
from maskcls.train.config import ConfigError, RunConfig


def test_borderline_counts_per_class_on_the_real_layout(real_layout):
    train = index_data(real_layout).train
    near = borderline(train, AgeBounds(30, 60), 3)
    assert set(train.loc[near, "age"]) <= {27, 28, 29, 57, 58, 59} and near.any()
    assert not borderline(train, AgeBounds(30, 60), 0).any()
    table = borderline_table(train, AgeBounds(30, 60), 3)
    for c in range(18):  # each class loses exactly its images of those ages
        rows = train[train["label"] == c]
        assert table.loc[c, "dropped"] == rows["age"].isin([27, 28, 29, 57, 58, 59]).sum()
    assert (table["kept"] == table["images"] - table["dropped"]).all()
    assert table.loc[[2, 5, 8, 11, 14, 17], "dropped"].sum() == 0  # the 60+ classes hold only age 60


def test_training_drops_them_and_validation_keeps_them(demo_root):
    base = RunConfig(data_root=str(demo_root))
    tr0, va0, _ = prepare_split(base.split_spec())
    tr3, va3, _ = prepare_split(RunConfig(data_root=str(demo_root), drop_borderline=3).split_spec())
    assert va3["path"].tolist() == va0["path"].tolist()  # validation untouched
    gone = set(tr0["path"]) - set(tr3["path"])
    assert gone and set(tr3["path"]) <= set(tr0["path"])
    ages = tr0.set_index("path").loc[sorted(gone), "age"]
    assert set(ages) <= {27, 28, 29, 57, 58, 59}
    assert not tr3["age"].isin([27, 28, 29, 57, 58, 59]).any()
    assert tr3.attrs["borderline_dropped"] == len(gone)


def test_a_negative_window_is_refused():
    with pytest.raises(ConfigError, match="drop_borderline must be a whole number from 0 to 120, got -1"):
        RunConfig(drop_borderline=-1).validate()


@pytest.mark.slow
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


@pytest.mark.slow
def test_k_folds_cover_everyone_once(studio_demo):
    t = index_data(studio_demo).train
    folds = [split_by_person(t, 0.2, 3, fold=k, n_folds=5) for k in range(5)]
    assert (np.sum(folds, axis=0) == 1).all()
    for f in folds:
        assert leaked_people(t, f) == 0
    with pytest.raises(ValueError, match="fold must be in 0..4"):
        split_by_person(t, 0.2, 3, fold=5, n_folds=5)
