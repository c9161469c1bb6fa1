"""Home and Data pages in AppTest: demo data, a real root, and wrong roots."""
import pytest
import numpy as np

from conftest import app_test


@pytest.mark.slow
def test_home_shows_demo_counts(studio_demo, tmp_path):
    at = app_test(runs_root=str(tmp_path))
    assert not at.exception
    assert any("synthetic demo data" in i.value for i in at.info)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["People"] == "600" and metrics["Eval images"] == "700"


@pytest.mark.slow
def test_home_wrong_root_is_a_message_not_a_traceback(studio_demo, tmp_path):
    at = app_test(data_root=str(tmp_path / "missing"), runs_root=str(tmp_path))
    assert not at.exception
    assert any("does not exist" in e.value and "missing" in e.value for e in at.error)
    at = app_test(data_root=str(tmp_path), runs_root=str(tmp_path))
    assert any("not in the competition layout" in e.value for e in at.error)


@pytest.mark.slow
def test_data_page_on_demo(studio_demo, tmp_path):
    at = app_test("pages/data.py", runs_root=str(tmp_path))
    assert not at.exception
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert len(titles) >= 6  # classes, 3 attributes, 2 splits
    assert "Images per class" in titles[0]
    leaks = {m.label: m.value for m in at.metric}
    assert leaks  # both splits report their leak count
    values = [m.value for m in at.metric]
    assert values[1] == "0" and int(values[0]) > 0  # person split: no leaks; random split: many
    at.selectbox(key="data_class").set_value(8).run()
    assert not at.exception


@pytest.mark.slow
def test_data_page_reports_skipped_files(real_layout, studio_demo, tmp_path):
    at = app_test("pages/data.py", data_root=str(real_layout), runs_root=str(tmp_path))
    assert not at.exception
    table = at.dataframe[-1].value
    assert (table["reason"].str.contains("AppleDouble")).sum() == 2


@pytest.mark.slow
def test_age_bounds_flow_to_the_data_page(studio_demo, tmp_path):
    at = app_test("pages/data.py", runs_root=str(tmp_path), age_upper=58)
    assert not at.exception
    assert any(">=58" in str(o) for o in at.selectbox(key="data_class").options)


@pytest.mark.slow
def test_data_page_shows_what_the_drop_removes(studio_demo, tmp_path):
    at = app_test("pages/data.py", runs_root=str(tmp_path))
    at.number_input(key="data_borderline").set_value(3).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "dropped" in d.value.columns)
    assert list(table.columns) == ["class", "name", "images", "dropped", "kept"] and table["dropped"].sum() > 0
    assert np.all(table["kept"] == table["images"] - table["dropped"])
