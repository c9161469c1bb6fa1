"""Borderline ages (the winning team's 27-29 and 57-59): left out of training, never out of validation."""
import numpy as np
import pytest

from conftest import app_test
from maskcls.data.index import index_data
from maskcls.data.labels import AgeBounds
from maskcls.data.splits import borderline, borderline_table
from maskcls.train.config import ConfigError, RunConfig
from maskcls.train.driver import prepare_split


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
    tr0, va0, _ = prepare_split(base)
    tr3, va3, _ = prepare_split(RunConfig(data_root=str(demo_root), drop_borderline=3))
    assert va3["path"].tolist() == va0["path"].tolist()  # validation untouched
    gone = set(tr0["path"]) - set(tr3["path"])
    assert gone and set(tr3["path"]) <= set(tr0["path"])
    ages = tr0.set_index("path").loc[sorted(gone), "age"]
    assert set(ages) <= {27, 28, 29, 57, 58, 59}
    assert not tr3["age"].isin([27, 28, 29, 57, 58, 59]).any()
    assert tr3.attrs["borderline_dropped"] == len(gone)


def test_a_negative_window_is_refused():
    with pytest.raises(ConfigError, match="drop_borderline must be >= 0"):
        RunConfig(drop_borderline=-1).validate()


def test_data_page_shows_what_the_drop_removes(studio_demo, tmp_path):
    at = app_test("pages/data.py", runs_root=str(tmp_path))
    at.number_input(key="data_borderline").set_value(3).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "dropped" in d.value.columns)
    assert list(table.columns) == ["class", "name", "images", "dropped", "kept"] and table["dropped"].sum() > 0
    assert np.all(table["kept"] == table["images"] - table["dropped"])
