"""Ensembles: soups, votes, TTA, the submission CSV in info.csv order, and the Ensemble page."""
import io

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import app_test, make_member, reference_lines, run_cli
from maskcls.cli import main
from maskcls.common.checkpoints import save_checkpoint
from maskcls.common.fileio import write_text
from maskcls.common.runfolder import RunFolder
from maskcls.data.labels import class_names
from hypothesis import given, settings, strategies as st

from maskcls.infer.ensemble import (ensemble_probabilities, Ensembling, hard_vote, member_probabilities,
                                    relative_weights, soft_vote)
from maskcls.infer.members import EvalInputs, Member
from maskcls.infer.submission import eval_paths
from maskcls.models.backbones import create_model
from maskcls.train.config import RunConfig


def inputs(paths, tmp_path) -> EvalInputs:
    return EvalInputs(paths, torch.device("cpu"), tmp_path / "c")


@pytest.fixture(scope="module")
def eval_data(demo_root):
    _, paths = eval_paths(demo_root)
    return paths[:40]


def test_soup_of_identical_checkpoints_predicts_like_one(tmp_path, eval_data):
    a = make_member(tmp_path, "a", size=(64, 48))
    state = torch.load(RunFolder(tmp_path, "a").best_path, weights_only=True)["model"]
    make_member(tmp_path, "b", size=(64, 48), state=state)
    one = ensemble_probabilities(tmp_path, [a], "soft", inputs(eval_data, tmp_path))
    soup = ensemble_probabilities(tmp_path, [a, Member("b")], "soup", inputs(eval_data, tmp_path))
    assert np.allclose(one, soup, atol=1e-5)


def test_soft_vote_is_the_mean_and_honours_weights(tmp_path, eval_data):
    members = [make_member(tmp_path, f"m{i}", size=(64, 48), seed=i) for i in range(2)]
    probs = member_probabilities(Ensembling(tmp_path, inputs(eval_data, tmp_path)), members)
    soft = ensemble_probabilities(tmp_path, members, "soft", inputs(eval_data, tmp_path))
    assert np.allclose(soft, (probs[0] + probs[1]) / 2, atol=1e-6)
    assert np.allclose(soft_vote(probs, [3, 1]), 0.75 * probs[0] + 0.25 * probs[1], atol=1e-6)


def test_hard_vote_majority_and_tie_break():
    def onehot(c, p=0.6):
        v = np.full(18, (1 - p) / 17)
        v[c] = p
        return v[None]
    # majority: 2 of 3 say class 4
    assert hard_vote([onehot(4), onehot(4), onehot(7, 0.99)])[0] == 4
    # tie 1-1: class 7 has the higher mean probability
    assert hard_vote([onehot(4, 0.5), onehot(7, 0.9)])[0] == 7
    assert hard_vote([onehot(4, 0.9), onehot(7, 0.5)])[0] == 4


def test_huge_weights_vote_as_their_proportions(tmp_path, eval_data):
    """Issue 35 #1: weights 1e308 and 1e308 (each finite, their sum inf) gave an all-class-0 submission."""
    members = [make_member(tmp_path, f"m{i}", size=(64, 48), seed=i) for i in range(2)]
    huge = [Member(m.run, weight=1e308) for m in members]
    probs = member_probabilities(Ensembling(tmp_path, inputs(eval_data, tmp_path)), members)
    with np.errstate(all="raise"):  # no overflow warning on the way either
        for name in ("soft", "hard", "soup"):
            got = ensemble_probabilities(tmp_path, huge, name, inputs(eval_data, tmp_path))
            want = ensemble_probabilities(tmp_path, members, name, inputs(eval_data, tmp_path))
            assert np.allclose(got, want, atol=1e-6), name
    assert np.allclose(soft_vote(probs, [1e308, 1e308]), soft_vote(probs, [1, 1]))
    assert np.allclose(soft_vote(probs, [3e307, 1e307]), soft_vote(probs, [3, 1]))


def test_hard_vote_counts_each_members_weight():
    """A weight given to a hard-voting member was silently ignored (the vote counted 1 per member)."""
    a, b = np.eye(18)[[4]] * 0.9, np.eye(18)[[7]] * 0.6
    assert hard_vote([a, b, b])[0] == 7
    assert hard_vote([a, b, b], [3, 1, 1])[0] == 4


positive_weight = st.floats(min_value=5e-324, max_value=1.7e308, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(positive_weight, min_size=1, max_size=8))
def test_relative_weights_are_finite_proportions_summing_to_one(weights):
    w = relative_weights(weights, len(weights))
    assert np.all(np.isfinite(w)) and np.all(w >= 0) and abs(w.sum() - 1) < 1e-9
    assert w[int(np.argmax(weights))] == w.max()  # the largest weight has the largest share (ties may round equal)
    top = max(weights)
    for wi, given_w in zip(w, weights):  # the proportions of the weights to the largest are kept
        assert abs(wi / w.max() - given_w / top) < 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=1, max_size=6),
       st.floats(min_value=1e-300, max_value=1e300))
def test_scaling_every_weight_changes_no_vote(weights, scale):
    rng = np.random.default_rng(len(weights))
    probs = [rng.dirichlet(np.ones(18), size=5) for _ in weights]
    scaled = [w * scale for w in weights]
    assert np.allclose(soft_vote(probs, weights), soft_vote(probs, scaled), atol=1e-6)
    assert (hard_vote(probs, weights) == hard_vote(probs, scaled)).all()


@pytest.mark.parametrize("bad", [[0.0, 1.0], [-1.0, 1.0], [float("nan"), 1.0], [float("inf"), 1.0]])
def test_relative_weights_refuse_what_is_no_proportion(bad):
    with pytest.raises(ValueError, match="finite numbers above 0"):
        relative_weights(bad, 2)


def test_soup_refuses_mixed_architectures(tmp_path, eval_data):
    a = make_member(tmp_path, "a", "resnet10t", (64, 48))
    b = make_member(tmp_path, "b", "test_resnet", (64, 48))
    with pytest.raises(ValueError, match="cannot average weights of different architectures.*resnet10t.*test_resnet"):
        ensemble_probabilities(tmp_path, [a, b], "soup", inputs(eval_data, tmp_path))
    mixed = ensemble_probabilities(tmp_path, [a, b], "soft", inputs(eval_data, tmp_path))
    assert mixed.shape == (len(eval_data), 18)


@pytest.fixture(scope="module")
def real_eval_order(tmp_path_factory):
    """A demo root whose eval/info.csv holds the first 700 real eval ids, in their (unsorted) real order."""
    from maskcls.data.demo import write_demo
    root = tmp_path_factory.mktemp("realeval")
    ids = reference_lines("eval_image_ids.txt")[:700]
    listing = reference_lines("train_image_paths.txt")[:70]
    (root / "ids.txt").write_text("\n".join(ids))
    (root / "listing.txt").write_text("\n".join(listing))
    write_demo(root / "data", from_listing=root / "listing.txt", eval_ids=root / "ids.txt", workers=2)
    return root / "data", ids


@pytest.mark.slow
def test_submission_matches_info_csv_row_for_row(real_eval_order, tmp_path, capsys):
    root, ids = real_eval_order
    assert ids != sorted(ids)
    make_member(tmp_path, "m0")
    make_member(tmp_path, "m1", seed=1)
    assert main(["predict", "--data", str(root), "--runs-root", str(tmp_path), "--members", "m0", "m1",
                 "--method", "soft", "--tta", "flip", "--out", str(tmp_path / "sub.csv"), "--device", "cpu"]) == 0
    sub = pd.read_csv(tmp_path / "sub.csv", dtype={"ImageID": str})
    info = pd.read_csv(root / "eval/info.csv", dtype={"ImageID": str})
    assert list(sub.columns) == ["ImageID", "ans"]
    assert sub["ImageID"].tolist() == info["ImageID"].tolist() == ids
    assert sub["ans"].between(0, 17).all() and sub["ans"].dtype.kind == "i"
    assert (tmp_path / "sub.probs.csv").exists()
    out = capsys.readouterr().out
    assert "score against the demo's hidden labels" in out and "95 % interval over the 100 eval people" in out


def test_missing_eval_image_is_named(demo_root, tmp_path):
    import shutil
    root = tmp_path / "d"
    shutil.copytree(demo_root / "eval", root / "eval")
    shutil.copytree(demo_root / "train", root / "train")
    victim = sorted((root / "eval/images").iterdir())[3]
    victim.unlink()
    with pytest.raises(ValueError, match=victim.name):
        eval_paths(root)


@pytest.mark.slow
def test_ensemble_page_downloads_the_csv(trained_run, studio_demo, monkeypatch):
    import streamlit.testing.v1.app_test as app_test_module
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    stores = []

    class Capturing(MemoryMediaFileStorage):
        """Keeps a handle on the test runtime's media store, where download data lives."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stores.append(self)
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", Capturing)
    runs, name, _ = trained_run
    at = app_test("pages/ensemble.py", runs_root=str(runs))
    assert not at.exception
    next(b for b in at.button if b.label == "Predict the eval set").click().run(timeout=120)
    assert not at.exception and not at.error
    dl = at.get("download_button")
    assert dl, "no download button"
    filename = dl[0].proto.url.rsplit("/", 1)[1]
    data = next(s.get_file(filename) for s in reversed(stores) if filename.split(".")[0] in s._files_by_id).content
    data = data.decode() if isinstance(data, bytes) else data
    sub = pd.read_csv(io.StringIO(data), dtype={"ImageID": str})
    info = pd.read_csv(studio_demo / "eval/info.csv", dtype={"ImageID": str})
    assert sub["ImageID"].tolist() == info["ImageID"].tolist() and sub["ans"].between(0, 17).all()


def copy_trained(trained_run, root):
    """The trained fixture run copied into `root`, so tests can add members beside it."""
    import shutil
    runs, name, _ = trained_run
    shutil.copytree(runs / name, root / name)
    return name


@pytest.mark.slow
def test_greedy_soup_keeps_checkpoints_that_do_not_hurt(trained_run, tmp_path):
    from maskcls.infer.ensemble import greedy_members
    name = copy_trained(trained_run, tmp_path)
    cfg = RunConfig.from_dict(RunFolder(tmp_path, name).read_config())
    torch.manual_seed(5)
    noise = RunFolder(tmp_path, "noise")
    noise.path.mkdir()
    write_text(noise.config_path, cfg.to_json())
    net, _ = create_model(cfg.model, pretrained=False, head=cfg.head)
    save_checkpoint(noise.best_path, {"model": net.state_dict(), "config": cfg.to_dict(), "classes": class_names(),
                                      "epoch": 1})
    candidates = [Member("noise"), Member(name, "epoch_005.pt"), Member(name, "best.pt")]
    chosen, best, steps, notes = greedy_members(tmp_path, candidates, torch.device("cpu"), tmp_path / "c")
    assert notes == []
    assert list(steps.columns) == ["checkpoint", "alone_f1", "soup_f1", "kept"] and len(steps) == 3
    # best-first: the first step is the strongest single checkpoint, and it is kept
    assert steps["alone_f1"].iloc[0] == steps["alone_f1"].max() and steps["kept"].iloc[0]
    noise_row = steps[steps["checkpoint"] == "noise:best.pt"].iloc[0]
    assert not noise_row["kept"] and noise_row["soup_f1"] < best
    assert "noise:best.pt" not in [m.label for m in chosen]
    assert best >= steps["alone_f1"].max() - 1e-12
    kept = steps[steps["kept"]]
    assert [m.label for m in chosen] == kept["checkpoint"].tolist()


def test_greedy_soup_refuses_mixed_architectures_before_scoring(tmp_path, eval_data):
    from maskcls.infer.ensemble import greedy_soup
    a = make_member(tmp_path, "a", "resnet10t", (64, 48))
    b = make_member(tmp_path, "b", "test_resnet", (64, 48))
    with pytest.raises(ValueError, match="different architectures"):
        greedy_soup(tmp_path, [a, b], inputs(eval_data, tmp_path), np.zeros(len(eval_data)))


@pytest.mark.slow
def test_predict_cli_greedy_soup_prints_its_choice(trained_run, studio_demo, tmp_path, capsys):
    name = copy_trained(trained_run, tmp_path)
    out = tmp_path / "sub.csv"
    assert main(["predict", "--data", str(studio_demo), "--runs-root", str(tmp_path), "--members",
                 f"{name}:epoch_004.pt", f"{name}:epoch_005.pt", f"{name}:best.pt", "--method", "greedy-soup",
                 "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "greedy soup:" in text and "checkpoints kept" in text and "decoding" in text
    sub = pd.read_csv(out, dtype={"ImageID": str})
    info = pd.read_csv(studio_demo / "eval/info.csv", dtype={"ImageID": str})
    assert sub["ImageID"].tolist() == info["ImageID"].tolist()


@pytest.mark.slow
def test_ensemble_page_scores_members_on_validation(trained_run):
    runs, name, _ = trained_run
    at = app_test("pages/ensemble.py", runs_root=str(runs))
    at.multiselect(key="ens_members").set_value([f"{name}:epoch_005.pt", f"{name}:best.pt"]).run()
    at.selectbox(key="ens_method").set_value("greedy-soup").run()
    next(b for b in at.button if b.label == "Score on validation").click().run(timeout=120)
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["member"].tolist()[:2] == [f"{name}:epoch_005.pt", f"{name}:best.pt"]
    assert table["member"].iloc[-1].startswith("ensemble (greedy-soup of ")
    assert table["macro_f1"].between(0, 1).all()
    assert any("optimistic" in w.value for w in at.warning)


def test_members_trained_on_another_split_are_flagged(demo_root, tmp_path):
    from maskcls.infer.ensemble import score_members
    for name, seed in (("s42", 42), ("s7", 7)):
        make_member(tmp_path, name, size=(64, 48), data_root=str(demo_root), split_seed=seed)
    table, notes, ens = score_members(tmp_path, [Member("s42"), Member("s7")], "soft", torch.device("cpu"),
                                      tmp_path / "c")
    assert table["member"].tolist() == ["s42:best.pt", "s7:best.pt", "ensemble (soft)"]
    assert len(notes) == 1 and notes[0].startswith("s7:best.pt was trained on another split (split_seed differ)")
    same_table, same, _ = score_members(tmp_path, [Member("s42"), Member("s42", "best.pt")], "soft",
                                        torch.device("cpu"), tmp_path / "c")
    assert same == []
    # issue 44: every row carries its interval over people, and the ensemble is judged against its best member
    assert (table["F1 low"] <= table["macro_f1"]).all() and (table["macro_f1"] <= table["F1 high"]).all()
    verdict = same_table.attrs["verdict"]
    assert verdict["best_member"] == "s42:best.pt" and verdict["difference"] == 0
    assert verdict["text"].startswith("cannot judge")  # two copies of one model: no variance, no verdict
    assert "ensemble" in table.attrs["verdict"]["verdict"] or table.attrs["verdict"]["verdict"].startswith(
        ("no evidence", "cannot judge"))


# 4 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weight", ["nan", "0", "-1", "inf", "abc"])
def test_member_weights_must_be_finite_and_positive(weight, capsys, tmp_path):
    with pytest.raises(ValueError, match="weight"):
        Member.parse(f"run::{weight}")
    code, _, err = run_cli(capsys, "predict", "--data", str(tmp_path), "--members", f"run::{weight}", "--out",
                           str(tmp_path / "s.csv"))
    assert code == 2 and f"{weight!r}" in err and not (tmp_path / "s.csv").exists()


def test_tuned_on_a_run_never_tuned(tiny_run, demo_root, tmp_path, capsys):
    runs, name = tiny_run
    code, _, err = run_cli(capsys, "predict", "--data", str(demo_root), "--runs-root", str(runs), "--members", name,
                           "--tuned", "--out", str(tmp_path / "s.csv"), "--quiet")
    assert code == 2 and "no tuned class biases" in err and "maskcls evaluate RUN --tune" in err
