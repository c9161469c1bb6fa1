"""K-fold training (issue 16, step 5): fold runs, the out-of-fold table, the fold ensemble, cross-fitted biases."""
import json
import time

import pandas as pd
import pytest

from conftest import config_file
from maskcls.cli import main
from maskcls.common.runfolder import RunFolder
from maskcls.data.index import index_data
from maskcls.orchestration import folds as kfold


@pytest.fixture(scope="module")
def folds(demo_root, tmp_path_factory):
    """Three folds trained once through the CLI: (runs root, its parent folder, the printed summary)."""
    import contextlib
    import io
    tmp_path = tmp_path_factory.mktemp("kfold")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", "--config", config_file(demo_root, tmp_path), "--folds", "3", "--name", "kf",
                     "--runs-root", str(tmp_path / "runs"), "--quiet"]) == 0
    return str(tmp_path / "runs"), tmp_path, json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.slow
def test_three_folds_give_runs_an_out_of_fold_table_and_a_fold_ensemble(demo_root, folds, capsys):
    runs, tmp_path, summary = folds
    assert summary["folds"] == 3
    assert [r.name for r in kfold.fold_runs(runs, "kf")] == ["kf-fold1", "kf-fold2", "kf-fold3"]
    assert all(RunFolder(runs, f"kf-fold{i}").state()["state"] == "completed" for i in (1, 2, 3))
    oof = pd.read_csv(tmp_path / "runs" / "kf-oof.csv", dtype={"person_id": str})
    assert list(oof.columns[:4]) == ["path", "person_id", "label", "fold"] and oof.shape[1] == 4 + 18
    train = index_data(demo_root).train
    assert sorted(oof["path"]) == sorted(train["path"])  # every training image exactly once
    assert oof.groupby("person_id")["fold"].nunique().max() == 1  # folds disjoint by person
    assert sorted(oof["fold"].unique()) == [0, 1, 2]
    for i in range(3):  # each row predicted by the fold that did not train on it
        val = RunFolder(runs, f"kf-fold{i + 1}").read_predictions()
        assert set(oof.loc[oof["fold"] == i, "path"]) == set(val["path"])
    assert main(["folds", "kf", "--json", "--save-bias", "--runs-root", runs]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"in_sample_f1", "crossfit_f1", "in_sample_gain", "crossfit_gain"} <= set(report)
    assert report["in_sample_gain"] >= report["crossfit_gain"] - 1e-9  # the in-sample figure is the optimistic one
    assert main(["predict", "--data", str(demo_root), "--folds", "kf", "--tuned", "--out", str(tmp_path / "sub.csv"),
                 "--runs-root", runs, "--quiet", "--cache-dir", str(tmp_path / "cache")]) == 0
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert list(sub.columns) == ["ImageID", "ans"] and len(sub) == len(index_data(demo_root).eval)


@pytest.mark.slow
def test_folds_as_background_jobs_write_the_table_when_the_last_ends(demo_root, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    assert main(["jobs", "submit", config_file(demo_root, tmp_path, limit_batches=3), "--folds", "2", "--name", "bg",
                 "--runs-root", runs]) == 0
    assert capsys.readouterr().out.split() == ["bg-fold1", "bg-fold2"]
    end = time.time() + 240
    while not (tmp_path / "runs" / "bg-oof.csv").exists():
        assert time.time() < end, [RunFolder(runs, n).log_tail() for n in ("bg-fold1", "bg-fold2")]
        time.sleep(1)
    oof = kfold.read_oof(runs, "bg")
    assert sorted(oof["path"]) == sorted(index_data(demo_root).train["path"])


@pytest.mark.parametrize("args, message", [
    (["--folds", "1", "--name", "x"], "--folds must be a whole number from 2 to 20, got 1"),
    (["--folds", "3"], "--folds needs --name NAME"),
])
def test_bad_fold_requests_are_refused(demo_root, tmp_path, capsys, args, message):
    assert main(["train", "--config", config_file(demo_root, tmp_path), "--runs-root", str(tmp_path / "r")] + args) == 2
    assert message in capsys.readouterr().err


def test_an_unknown_fold_group_is_named(tmp_path, capsys):
    assert main(["folds", "nope", "--runs-root", str(tmp_path)]) == 2
    assert "no fold runs named nope-fold1" in capsys.readouterr().err


@pytest.mark.slow
def test_the_pages_read_the_out_of_fold_table(demo_root, folds):
    from conftest import app_test
    runs, _, _ = folds
    oof = kfold.read_oof(runs, "kf")
    predicted = kfold.probs_of(oof).argmax(1)
    wrong = oof[predicted != oof["label"]]
    true, pred = int(wrong["label"].iloc[0]), int(predicted[(predicted != oof["label"]).argmax()])
    at = app_test("pages/evaluate.py", runs_root=runs, data_root=str(demo_root), eval_run="kf (out-of-fold)",
                  eval_matrix="class", eval_true=true, eval_pred=pred, eval_cam_on=True)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "kf-oof.csv" in " ".join(c.value for c in at.caption)
    assert any(m.label == "Validation images" and m.value == f"{len(oof):,}" for m in at.metric)
    assert len(at.get("image")) >= 2  # the cell's gallery and the Grad-CAM views of its fold's model
    at.button(key="eval_tune_oof").click().run()
    assert "cross-fitted" in " ".join(s.value for s in at.success)
    at = app_test("pages/ensemble.py", runs_root=runs, data_root=str(demo_root))
    at.button(key="ens_use_folds").click().run()
    assert not at.exception
    assert at.multiselect(key="ens_members").value == ["kf-fold1:best.pt", "kf-fold2:best.pt", "kf-fold3:best.pt"]
    assert "out-of-fold macro F1" in " ".join(c.value for c in at.caption)


def test_the_train_page_queues_the_folds_in_one_action(demo_root, tmp_path):
    from conftest import app_test
    from maskcls.orchestration import jobs
    runs = str(tmp_path / "runs")
    at = app_test("pages/train.py", runs_root=runs, data_root=str(demo_root))
    at.text_input(key="train_name").set_value("pagefolds")
    at.number_input(key="train_folds").set_value(2)
    next(b for b in at.button if b.label == "Launch").click().run()
    try:
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert "Queued 2 folds" in " ".join(s.value for s in at.success)
        cfgs = [RunFolder(runs, f"pagefolds-fold{i}").read_config() for i in (1, 2)]
        assert [(c["fold"], c["n_folds"]) for c in cfgs] == [(0, 2), (1, 2)]
    finally:
        for i in (1, 2):
            try:
                jobs.cancel(runs, f"pagefolds-fold{i}", grace=2)
            except ValueError:
                pass


def test_train_on_all_data_uses_every_person_for_the_best_epoch_count(demo_root, tmp_path, capsys):
    from maskcls.common.checkpoints import load_checkpoint
    runs = str(tmp_path / "runs")
    cfg = config_file(demo_root, tmp_path, epochs=3, limit_batches=2)
    assert main(["train", "--config", cfg, "--name", "src", "--runs-root", runs, "--quiet"]) == 0
    best_epoch = RunFolder(runs, "src").read_status()["best_epoch"]
    assert main(["train", "--full-data", "src", "--runs-root", runs, "--quiet"]) == 0
    full = RunFolder(runs, "src-full")
    cfg = full.read_config()
    assert cfg["full_data"] and cfg["epochs"] == best_epoch and full.state()["state"] == "completed"
    assert "0 validation images" in full.log_tail(50) and "no validation (all data)" in full.log_tail(50)
    train = index_data(demo_root).train
    assert f"{len(train)} train / 0 validation images" in full.log_tail(50)
    assert load_checkpoint(full.best_path)["epoch"] == best_epoch == load_checkpoint(full.last_path)["epoch"]
    from maskcls.orchestration.compare import curves_figure, runs_table
    table = runs_table(runs)  # a run without validation figures sits in the tables and charts
    assert "src-full" in set(table["name"])
    curves_figure(runs, ["src", "src-full"])
    capsys.readouterr()
    assert main(["train", "--full-data", "src-full", "--runs-root", runs]) == 2
    assert "already trained on all data" in capsys.readouterr().err


def test_the_winners_preset_validates_and_trains_one_small_cpu_epoch(demo_root, tmp_path, capsys):
    from maskcls.augment.spec import create_preset
    from maskcls.train.config import create_config
    cfg = create_config("winners-2022")
    assert cfg.model == "efficientnet_b0" and cfg.drop_borderline == 3 and cfg.augment == "winners-2022"
    mix = create_preset("winners-2022").mix
    assert (mix.vertical, mix.cut_min, mix.cut_max, mix.partner) == (True, 0.46, 0.54, "same_class")
    runs = str(tmp_path / "runs")
    assert main(["train", "--preset", "winners-2022", "--data", str(demo_root), "--name", "w", "--runs-root", runs,
                 "--set", "model=test_efficientnet", "--set", "pretrained=false", "--set", "image_size=[64,48]",
                 "--set", "epochs=1", "--set", "batch_size=16", "--set", f"cache_dir={tmp_path / 'cache'}",
                 "--quiet"]) == 0
    assert RunFolder(runs, "w").state()["state"] == "completed"
    assert "borderline-age training images left out" in RunFolder(runs, "w").log_tail(50)


@pytest.mark.slow
def test_a_cancelled_fold_keeps_the_group_from_being_used(demo_root, tmp_path, capsys):
    from conftest import app_test, wait_until
    from maskcls.orchestration import jobs
    runs = str(tmp_path / "runs")
    assert main(["jobs", "submit", config_file(demo_root, tmp_path, limit_batches=2, epochs=6), "--folds", "3",
                 "--name", "kfc", "--runs-root", runs]) == 0
    capsys.readouterr()
    fold2 = RunFolder(runs, "kfc-fold2")
    wait_until(lambda: fold2.read_status().get("state") == "running" and fold2.read_status().get("epoch", 0) >= 1,
               240, "fold 2 to train an epoch")
    jobs.cancel(runs, "kfc-fold2")
    wait_until(lambda: RunFolder(runs, "kfc-fold3").state()["state"] in ("completed", "failed"), 240, "fold 3 to end")
    assert fold2.read_predictions() is not None  # it has early-epoch predictions: exactly what must not be used
    assert not (tmp_path / "runs" / "kfc-oof.csv").exists()
    expected = "fold group 'kfc' is not complete: kfc-fold2 is cancelled"
    assert main(["folds", "kfc", "--runs-root", runs]) == 2
    err = capsys.readouterr().err
    assert expected in err and "`maskcls train --resume kfc-fold2`" in err
    assert main(["predict", "--data", str(demo_root), "--folds", "kfc", "--out", str(tmp_path / "s.csv"),
                 "--runs-root", runs, "--quiet"]) == 2
    assert expected in capsys.readouterr().err and not (tmp_path / "s.csv").exists()
    with pytest.raises(ValueError, match=expected):
        kfold.write_oof(runs, "kfc")
    at = app_test("pages/ensemble.py", runs_root=runs, data_root=str(demo_root))
    assert any(expected in w.value for w in at.warning)
    assert at.button(key="ens_use_folds").disabled
    # an out-of-fold table left from before is not served while a fold is unfinished
    (tmp_path / "runs" / "kfc-oof.csv").write_text("path,person_id,label,fold\n")
    at = app_test("pages/evaluate.py", runs_root=runs, data_root=str(demo_root), eval_run="kfc (out-of-fold)")
    assert any(expected in e.value for e in at.error)
