"""Metrics, label-error finding, decision tuning and Grad-CAM on a real (small) trained run."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from conftest import app_test, copy_run, Payload, run_cli, TINY
from maskcls.cli import main
from maskcls.common.checkpoints import load_checkpoint
from maskcls.common.runfolder import probs_of, RunFolder
from maskcls.infer.evaluation import apply_bias, report, suggested_correction, tune_biases, validation_predictions
from maskcls.infer.review import review_queue
from maskcls.train.metrics import evaluate_predictions


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 18, 500)
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, 18, 500))
    r = evaluate_predictions(y, p)
    assert r["accuracy"] == accuracy_score(y, p)
    assert r["macro_f1"] == f1_score(y, p, labels=range(18), average="macro", zero_division=0)
    assert r["confusion"] == confusion_matrix(y, p, labels=range(18)).tolist()
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=range(18), zero_division=0)
    for c in range(18):
        assert r["per_class"][c]["precision"] == prec[c] and r["per_class"][c]["recall"] == rec[c]
        assert r["per_class"][c]["f1"] == f1[c] and r["per_class"][c]["support"] == sup[c]
    g_true, g_pred = (y // 3) % 2, (p // 3) % 2
    assert r["attributes"]["gender"]["confusion"] == confusion_matrix(g_true, g_pred).tolist()
    assert r["attributes"]["age"]["accuracy"] == accuracy_score(y % 3, p % 3)


@pytest.mark.slow
def test_the_review_queue_ranks_flipped_people_on_top(trained_run):
    runs, name, flipped = trained_run
    queue = review_queue(validation_predictions(runs, name))
    top = queue.main.head(len(flipped))
    hits = set(top["person_id"]) & set(flipped)
    assert len(hits) >= 8, (sorted(hits), queue.main.head(15))
    assert (top.loc[top["person_id"].isin(flipped), "attribute"] == "gender").all()  # for the right reason
    fixes = [suggested_correction(row) for row in top[top["person_id"].isin(flipped)].itertuples()]
    assert all(f["gender"] in ("male", "female") for f in fixes)


@pytest.mark.slow
def test_decision_tuning_does_not_lower_macro_f1(trained_run):
    runs, name, _ = trained_run
    preds = validation_predictions(runs, name)
    bias, before, after = tune_biases(probs_of(preds), preds["label"].to_numpy())
    assert after >= before
    assert report(preds, bias)["macro_f1"] == pytest.approx(after)
    assert np.allclose(apply_bias(probs_of(preds), np.zeros(18)).sum(1), 1, atol=1e-5)


@pytest.mark.slow
def test_evaluate_cli_json(trained_run, capsys):
    runs, name, _ = trained_run
    assert main(["evaluate", name, "--runs-root", str(runs), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "per_class"} <= set(out) and len(out["per_class"]) == 18
    assert main(["evaluate", name, "--runs-root", str(runs), "--checkpoint", "epoch_001.pt", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["checkpoint"] == "epoch_001.pt" and 0 <= again["macro_f1"] <= 1


@pytest.mark.slow
def test_gradcam_maps(trained_run):
    from maskcls.models.cam import compute_cam, list_cam_methods
    from maskcls.train.config import RunConfig
    from maskcls.infer.members import build_model
    from maskcls.data.imageio import load_preprocessed
    from maskcls.common.runfolder import RunFolder
    from maskcls.common.checkpoints import load_checkpoint
    runs, name, _ = trained_run
    ckpt = load_checkpoint(RunFolder(runs, name).best_path)
    cfg = RunConfig.from_dict(ckpt["config"])
    model = build_model(ckpt, cfg)
    path = validation_predictions(runs, name)["path"].iloc[0]
    pixels = load_preprocessed(path, tuple(cfg.image_size))
    for method in list_cam_methods()[:3]:
        a = compute_cam(model, pixels, cfg.augment_spec(), 0, method=method)
        b = compute_cam(model, pixels, cfg.augment_spec(), 14, method=method)
        assert a.shape == pixels.shape[:2] and a.min() >= 0 and a.max() <= 1
        if method != "eigencam":  # EigenCAM is class-agnostic by design
            assert not np.allclose(a, b)


@pytest.mark.slow
def test_evaluate_page_cell_and_gradcam(trained_run, studio_demo):
    runs, name, _ = trained_run
    at = app_test("pages/evaluate.py", runs_root=str(runs))
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= 5
    preds = validation_predictions(runs, name)
    probs = probs_of(preds)
    wrong = preds["label"].to_numpy() != probs.argmax(1)
    true, pred = int(preds["label"][wrong].iloc[0]), int(probs[wrong].argmax(1)[0])
    at.selectbox(key="eval_true").set_value(true).run()
    at.selectbox(key="eval_pred").set_value(pred).run()
    assert not at.exception
    at.toggle(key="eval_cam_on").set_value(True).run()
    assert not at.exception and not at.error
    captions = [i.caption for img in at.get("image") for i in img.proto.imgs]
    assert any(c.startswith("predicted:") for c in captions) and any(c.startswith("true:") for c in captions)


@pytest.mark.slow
def test_evaluate_page_with_a_three_head_model_and_bad_runs(demo_root, studio_demo, tmp_path):
    from maskcls.train.config import RunConfig
    from maskcls.train.driver import train_run
    runs = tmp_path / "runs"
    cfg = RunConfig.from_dict({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "c"), "head": "multi"})
    train_run(cfg, runs, "multi")
    from maskcls.infer.evaluation import validation_predictions
    from maskcls.common.runfolder import probs_of
    first = validation_predictions(runs, "multi")
    at = app_test("pages/evaluate.py", runs_root=str(runs))
    assert not at.exception
    at.selectbox(key="eval_true").set_value(int(first["label"].iloc[0])).run()
    at.selectbox(key="eval_pred").set_value(int(probs_of(first)[0].argmax())).run()
    at.toggle(key="eval_cam_on").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.radio(key="eval_cam_head").set_value("gender").run()
    assert not at.exception and not at.error
    captions = [i.caption for img in at.get("image") for i in img.proto.imgs]
    assert any("(gender head)" in c for c in captions)
    # a checkpoint of another architecture and no saved predictions: a message, not a traceback
    import shutil
    shutil.copytree(runs / "multi", runs / "broken")
    (runs / "broken" / "val_predictions.csv").unlink()
    cfg_text = (runs / "broken" / "config.json").read_text()
    import torch
    ck = torch.load(runs / "broken" / "best.pt", weights_only=True)
    ck["config"]["model"] = "resnet10t"
    torch.save(ck, runs / "broken" / "best.pt")
    at = app_test("pages/evaluate.py", runs_root=str(runs))
    at.selectbox(key="eval_run").set_value("broken").run()
    assert not at.exception
    assert any("Cannot evaluate broken/best.pt" in e.value and "does not fit" in e.value for e in at.error)
    # a deleted image: a warning in the gallery, the page goes on
    from maskcls.infer.evaluation import validation_predictions
    from maskcls.common.runfolder import probs_of
    preds = validation_predictions(runs, "multi")
    probs = probs_of(preds)
    from maskcls.infer.evaluation import cell_errors
    true, pred = int(preds["label"].iloc[0]), int(probs[0].argmax())
    victim = cell_errors(preds, true, pred)["path"].iloc[0]  # first in the gallery
    shutil.copy(victim, tmp_path / "keep.jpg")
    import os
    os.unlink(victim)
    try:
        at = app_test("pages/evaluate.py", runs_root=str(runs))
        at.selectbox(key="eval_run").set_value("multi").run()
        at.selectbox(key="eval_true").set_value(true).run()
        at.selectbox(key="eval_pred").set_value(pred).run()
        assert not at.exception
        assert any("Skipped" in w.value and "file not found" in w.value for w in at.warning)
    finally:
        shutil.copy(tmp_path / "keep.jpg", victim)
    assert (runs / "broken" / "config.json").read_text() == cfg_text  # the page never rewrites a run's config


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "truncated", "malicious"])
def test_evaluate_refuses_an_unusable_named_checkpoint(tiny_run, tmp_path, capsys, damage):
    runs, name = copy_run(tiny_run, tmp_path)
    best = runs / name / "best.pt"
    if damage == "missing":
        best.unlink()
    elif damage == "truncated":
        best.write_bytes(best.read_bytes()[:500])
    else:
        torch.save({"format": "maskcls-checkpoint-1", "x": Payload()}, best)
    code, out, err = run_cli(capsys, "evaluate", name, "--runs-root", str(runs), "--json")
    assert code == 2 and "best.pt" in err and out == ""
    assert {"missing": "does not exist", "truncated": "damaged", "malicious": "refused"}[damage] in err
    at = app_test("pages/evaluate.py", runs_root=str(runs), eval_ckpt="best.pt")
    assert not at.exception
    if damage == "missing":  # the page offers only the checkpoints that are there
        assert "best.pt" not in at.selectbox(key="eval_ckpt").options
    else:
        assert any("Cannot evaluate" in e.value and "best.pt" in e.value for e in at.error)


@pytest.mark.slow
@pytest.mark.parametrize("damage, message", [
    ("no model", "is damaged: it holds no 'model' weights (keys: "),
    ("model is text", "is damaged: 'model' must map parameter names to tensors, found string"),
    ("a weight is text", "is damaged: 'model' must map parameter names to tensors; "),
])
def test_a_checkpoint_without_usable_weights_is_named_by_every_reader(tiny_run, demo_root, tmp_path, capsys, damage,
                                                                      message):
    """Issue 35 #8: a best.pt without a 'model' key was evaluated as if fine and made predict say "error: 'model'";
    a 'model' that was a string gave a TypeError traceback."""
    runs, name = copy_run(tiny_run, tmp_path)
    best = runs / name / "best.pt"
    ckpt = torch.load(best, weights_only=True)
    if damage == "no model":
        del ckpt["model"]
    elif damage == "model is text":
        ckpt["model"] = "weights"
    else:
        ckpt["model"][next(iter(ckpt["model"]))] = "x"
    torch.save(ckpt, best)
    for args in (["evaluate", name], ["predict", "--data", str(demo_root), "--members", name,
                                      "--method", "soft", "--out", str(tmp_path / "s.csv")], ["compare", name, name]):
        code, _, err = run_cli(capsys, *args, "--runs-root", str(runs))
        if args[0] == "compare":  # compares stored predictions, reads no checkpoint
            assert code == 0, err
            continue
        assert code == 2 and message in err and "best.pt" in err and "Traceback" not in err, (args, err)
    at = app_test("pages/evaluate.py", runs_root=str(runs), eval_ckpt="best.pt")
    assert not at.exception and any(message in e.value for e in at.error), [e.value for e in at.error]


@pytest.mark.slow
@pytest.mark.parametrize("edit, message", [
    (lambda f: f.rename(columns={"label": "y", "p3": "q"}), "is damaged: no column label, p3 (found path, person_id, "
                                                             "y, "),
    (lambda f: f.assign(label="cat"), "is damaged: line 2 has label 'cat', expected a class 0-17"),
    (lambda f: f.assign(label=18), "is damaged: line 2 has label '18', expected a class 0-17"),
    (lambda f: f.assign(p5="NaN"), "is damaged: line 2 holds a probability that is not a number from 0 to 1"),
    (lambda f: f.head(0), "holds no rows"),
    (lambda f: pd.concat([f, f.head(1)]), "is listed twice"),
])
def test_damaged_validation_predictions_are_named_by_every_reader(tiny_run, tmp_path, capsys, edit, message):
    """Issue 35 #8: a val_predictions.csv with other columns gave pandas KeyErrors in evaluate, compare, review and
    export, and crashed the Evaluate page; every reader now goes through one validating reader."""
    runs, name = copy_run(tiny_run, tmp_path)
    path = runs / name / "val_predictions.csv"
    edit(pd.read_csv(path, dtype={"person_id": str})).to_csv(path, index=False)
    for args in (["evaluate", name], ["compare", name, name], ["review", name], ["export", name, "--to",
                                                                                   "tensorboard"]):
        code, out, err = run_cli(capsys, *args, "--runs-root", str(runs))
        assert code == 2 and "val_predictions.csv" in err and message in err and "Traceback" not in err, (args, err)
    at = app_test("pages/evaluate.py", runs_root=str(runs), eval_ckpt="best.pt")
    assert not at.exception and any(message in e.value for e in at.error), [e.value for e in at.error]


@pytest.mark.slow
def test_a_run_stores_each_epochs_predictions_and_a_selection_free_figure(tiny_run, capsys):
    """Issue 36 #4: the run keeps every epoch's predicted classes (val_history.csv), so its best-epoch figure is
    shown beside a selection-free one, in evaluate and on the Evaluate page."""
    runs, name = tiny_run
    run = RunFolder(runs, name)
    history = run.read_history()
    assert [c for c in history.columns if c.startswith("e")] == ["e1", "e2"]
    preds = run.read_predictions()
    best = run.read_status()["predictions_epoch"]
    assert (history[f"e{best}"].to_numpy() == preds[[f"p{i}" for i in range(18)]].to_numpy().argmax(1)).all()
    free = run.read_intervals()["selection_free"]
    assert free["epochs"] == 2 and free["macro_f1_ci"][0] <= free["macro_f1"] <= free["macro_f1_ci"][1]
    code, out, _ = run_cli(capsys, "evaluate", name, "--runs-root", str(runs))
    assert code == 0 and "the best of 2 epochs, chosen on these same people, leans high: selection-free macro F1" in out
    at = app_test("pages/evaluate.py", runs_root=str(runs), eval_ckpt="best.pt")
    assert not at.exception and any("selection-free macro F1" in i.value for i in at.info)


def test_evaluate_says_where_its_figures_come_from(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    code, out, _ = run_cli(capsys, "evaluate", name, "--runs-root", str(runs), "--json")
    best_epoch = load_checkpoint(runs / name / "best.pt")["epoch"]
    assert code == 0 and json.loads(out)["source"].startswith(f"validation predictions saved when best.pt was "
                                                               f"written (epoch {best_epoch})")
    RunFolder(runs, name).write_status(predictions_epoch=99)  # saved predictions of another epoch: not used
    code, out, _ = run_cli(capsys, "evaluate", name, "--runs-root", str(runs), "--json")
    assert code == 0 and json.loads(out)["source"].startswith("predicted now with best.pt")


@pytest.mark.parametrize("form", ["relative", "absolute", "trailing slash"])
def test_evaluate_takes_a_run_folder_path(tiny_run, form, monkeypatch, capsys):
    runs, name = tiny_run
    monkeypatch.chdir(runs.parent)
    ref = {"relative": f"runs/{name}", "absolute": str(runs / name), "trailing slash": f"runs/{name}/"}[form]
    assert main(["evaluate", ref, "--json"]) == 0  # no --runs-root: the path says where the run is
    out = json.loads(capsys.readouterr().out)
    assert out["run"] == name and out["path"] == str((runs / name).resolve()) and 0 <= out["macro_f1"] <= 1
