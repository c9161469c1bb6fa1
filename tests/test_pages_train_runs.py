"""Train and Runs pages in AppTest: launch a job from the form, see it in the live table, compare runs."""
import time

import pytest

from conftest import app_test
from maskcls.common.runfolder import RunFolder
from maskcls.orchestration import jobs


@pytest.mark.slow
def test_train_page_submits_a_job_and_lists_it(demo_root, tmp_path):
    runs = tmp_path / "runs"
    at = app_test("pages/train.py", runs_root=str(runs), data_root=str(demo_root))
    assert not at.exception
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_h").set_value(64)
    at.number_input(key="train_w").set_value(48)
    at.text_input(key="train_name").input("from-page")
    at.button[0].click().run()  # the form's Launch button
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Launched" in s.value and "from-page" in s.value for s in at.success)
    at.button[0].click().run()  # issue 35 #12: a double-click said only "Not launched: … already exists"
    assert not at.error, [e.value for e in at.error]
    assert any("from-page" in i.value and "already launched from this page" in i.value for i in at.info)
    assert [p.name for p in runs.iterdir() if p.name.startswith("from-page")] == ["from-page"]
    table = at.dataframe[0].value
    assert "from-page" in table["name"].tolist()
    assert table.set_index("name").at["from-page", "state"] in ("queued", "running", "completed")
    deadline = time.time() + 180
    while jobs.job_info(RunFolder(runs, "from-page")).state in ("queued", "running") and time.time() < deadline:
        time.sleep(1)
    assert jobs.job_info(RunFolder(runs, "from-page")).state == "completed", RunFolder(runs, "from-page").log_tail()
    at.run()
    assert at.dataframe[0].value.set_index("name").at["from-page", "state"] == "completed"


@pytest.mark.slow
@pytest.mark.parametrize("key, value, why", [
    ("train_lr", -0.1, "lr must be a number above 0"),
    ("train_name", "bad/name", "invalid run name 'bad/name'"),
])
def test_train_page_refuses_a_bad_value_with_a_message(studio_demo, tmp_path, key, value, why):
    at = app_test("pages/train.py", runs_root=str(tmp_path / "runs"))
    widget = at.number_input(key=key) if key == "train_lr" else at.text_input(key=key)
    widget.set_value(value)
    at.button[0].click().run()
    assert not at.exception
    assert any("Not launched" in e.value and why in e.value for e in at.error), [e.value for e in at.error]
    assert not (tmp_path / "runs").exists() or not [p for p in (tmp_path / "runs").iterdir() if p.name != ".locks"]


@pytest.mark.slow
def test_runs_page_compares_and_deletes(trained_run, studio_demo, tmp_path):
    import shutil
    runs, name, _ = trained_run
    copy = tmp_path / "runs"
    shutil.copytree(runs / name, copy / name)
    shutil.copytree(runs / name, copy / "other")
    cfg = (copy / "other" / "config.json").read_text().replace('"lr": 0.003', '"lr": 0.001')
    (copy / "other" / "config.json").write_text(cfg)
    at = app_test("pages/runs.py", runs_root=str(copy))
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["name"]) == {name, "other"} and table["best macro F1"].notna().all()
    diff = at.dataframe[1].value
    assert "lr" in diff.index
    at.selectbox(key="runs_delete_pick_0").set_value("other").run()
    at.checkbox(key="runs_delete_sure_other").check().run()
    at.button(key="runs_delete").click().run()
    assert not (copy / "other").exists() and (copy / name).exists()
    assert any("Deleted other" in m.value for m in at.success)
    assert at.selectbox(key="runs_delete_pick_1").value is None  # nothing armed for the next run
    assert not [c for c in at.checkbox if c.key and c.key.startswith("runs_delete_sure")]
