"""Train and Runs pages in AppTest: launch a job from the form, see it in the live table, compare runs."""
import time

import pytest

from conftest import REPO, app_test
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


def test_the_train_form_keeps_its_values_across_pages_and_shows_fields_for_what_is_chosen(demo_root, tmp_path):
    """Issue 44: the form forgot its values after a visit to another page (back to ce / none / 8 epochs) and showed
    fields for losses not chosen."""
    at = app_test("pages/train.py", runs_root=str(tmp_path / "runs"), data_root=str(demo_root))
    labels = lambda: [n.label for n in at.number_input]  # noqa: E731
    assert "Focal gamma" not in labels() and "Label smoothing" not in labels() and "Momentum" not in labels()
    at.selectbox(key="train_loss").set_value("focal").run()
    at.number_input(key="train_epochs").set_value(3).run()
    at.selectbox(key="train_sampler").set_value("class").run()
    assert "Focal gamma" in labels() and "Label smoothing" not in labels()
    at.selectbox(key="train_optimizer").set_value("sgd").run()
    assert "Momentum" in labels()
    at.switch_page(str(REPO / "pages" / "data.py"))
    at.run()
    at.switch_page(str(REPO / "pages" / "train.py"))
    at.run()
    assert not at.exception
    assert at.selectbox(key="train_loss").value == "focal" and at.number_input(key="train_epochs").value == 3
    assert at.selectbox(key="train_sampler").value == "class" and at.selectbox(key="train_optimizer").value == "sgd"
    assert at.session_state["train_config"]["loss"] == "focal"  # what the Ladders and Sweeps pages start from
    assert [b.label for b in at.button][:2] == ["Launch", "Repeat with 3 seeds"]
    assert at.number_input(key="train_seeds").label == "Seeds"


def test_the_train_form_starts_from_a_preset_or_a_finished_run(tiny_run, demo_root, tmp_path):
    import shutil
    runs = tmp_path / "runs"
    shutil.copytree(tiny_run[0] / tiny_run[1], runs / "done", ignore=shutil.ignore_patterns(".*.lock"))
    at = app_test("pages/train.py", runs_root=str(runs), data_root=str(demo_root))
    assert "run: done" in at.selectbox(key="train_start").options
    at.selectbox(key="train_start").set_value("winners-2022").run()
    assert at.selectbox(key="train_model").value == "efficientnet_b0" and at.selectbox(key="train_sampler").value \
        == "class" and at.number_input(key="train_borderline").value == 3
    at.selectbox(key="train_start").set_value("run: done").run()
    assert not at.exception
    assert at.selectbox(key="train_model").value == "test_resnet" and at.number_input(key="train_h").value == 64
    assert "from run: done" in " ".join(c.value for c in at.caption)
    at.text_input(key="train_weights").input(str(tmp_path / "nope.safetensors")).run()
    assert any("no such file" in e.value for e in at.error)


@pytest.mark.slow
def test_the_train_page_estimates_the_time_before_launch(demo_root, tmp_path):
    at = app_test("pages/train.py", runs_root=str(tmp_path / "runs"), data_root=str(demo_root))
    at.number_input(key="train_h").set_value(64).run()
    at.number_input(key="train_w").set_value(48).run()
    at.number_input(key="train_epochs").set_value(2).run()
    assert any("no measured speed to estimate from" in c.value for c in at.caption)
    at.button(key="train_probe").click().run(timeout=180)
    assert not at.exception
    shown = " ".join(i.value for i in at.info)
    assert "Estimated time on cpu" in shown and "a probe of" in shown and "a repeat of 3 seeds about" in shown
