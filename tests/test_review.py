"""The review queue: planted gender flips come first, borderline ages wait apart, the CLI and the page write one
corrections file."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import app_test, tiny
from maskcls.cli import main
from maskcls.common.runfolder import RunFolder
from maskcls.data.corrections import corrections_path, load_corrections, reviewed_ids
from maskcls.data.labels import AgeBounds, GENDER_KEYS
from maskcls.data.splits import prepare_split
from maskcls.infer.review import is_borderline, review_queue
from maskcls.orchestration import reviews
from maskcls.train.driver import train_run

PLANTED = 16


@pytest.fixture(scope="module")
def flipped_folds(tmp_path_factory):
    """A 240-person demo with PLANTED people's gender flipped by a corrections file, trained as 3 folds:
    (runs root, data root, the flipped ids)."""
    from maskcls.data.demo import write_demo
    from maskcls.data.index import index_data
    from maskcls.orchestration.folds import train_folds
    from maskcls.train.config import create_config
    base = tmp_path_factory.mktemp("review")
    root = base / "demo"
    write_demo(root, people=240, eval_people=0, seed=11, workers=2)
    people = index_data(root).train.drop_duplicates("person_id").set_index("person_id")
    flipped = sorted(np.random.default_rng(5).choice(people.index, PLANTED, replace=False))
    pd.DataFrame({"id": flipped, "gender": ["female" if people.loc[p, "gender"] == 0 else "male" for p in flipped],
                  "age": "", "swap_mask": 0, "note": "planted"}).to_csv(base / "flips.csv", index=False)
    # the face crop: at 64x48 the whole frame leaves the face too few pixels to tell gender well (gender accuracy
    # 0.85 out of fold), the crop gives the folds a model worth reviewing with. Four epochs of 32-image batches find
    # as many planted flips as six of 16 did (14 of 16 in the top 16, measured alone) in 60 % of the time
    cfg = create_config("demo-cpu", data_root=str(root), corrections=str(base / "flips.csv"), image_size=[64, 48],
                        epochs=4, batch_size=32, face_crop=True, cache_dir=str(base / "cache"))
    train_folds(cfg, base / "runs", "rq", 3, say=lambda m: None)
    return base / "runs", root, flipped


def strict(constant):
    raise ValueError(f"{constant} is not JSON")


@pytest.mark.slow
def test_planted_flips_lead_the_queue(flipped_folds):
    runs, _, flipped = flipped_folds
    q = reviews.open_review(runs, "rq").queue
    top = q.main.head(PLANTED)
    # a hit is a planted person suggested for the planted reason (gender); the same person may also carry an age
    # suggestion of its own (the model doubts both), which is not counted
    hits = set(top.loc[top["attribute"] == "gender", "person_id"]) & set(flipped)
    assert len(hits) >= 0.8 * PLANTED, (len(hits), q.main.head(PLANTED + 5))


@pytest.mark.slow
def test_the_queue_holds_flagged_people_and_borderline_ages_wait_apart(flipped_folds):
    runs, _, flipped = flipped_folds
    review = reviews.open_review(runs, "rq")
    q = review.queue
    # most planted flips are found at all, in the main queue, for gender (measured 14-15 of 16)
    found = set(q.main.loc[q.main["attribute"] == "gender", "person_id"]) & set(flipped)
    assert len(found) >= PLANTED // 2, (len(found), q.main.head(PLANTED + 5))
    assert q.scored == 240 and q.flagged == len(q.main) + len(q.borderline) < q.scored  # only flagged people
    ages = reviews.person_ages(review.config)
    near = is_borderline(q.main["person_id"].map(ages).to_numpy(), AgeBounds(), q.distance)
    assert not (near & (q.main["attribute"] == "age").to_numpy()).any()
    assert (q.borderline["attribute"] == "age").all()


@pytest.mark.slow
def test_cli_and_page_share_one_corrections_file(flipped_folds, capsys):
    runs, root, flipped = flipped_folds
    assert main(["review", "rq", "--json", "--runs-root", str(runs), "--into", "rt"]) == 0
    listed = json.loads(capsys.readouterr().out, parse_constant=strict)  # issue 35 #12: bare NaN is not JSON
    assert listed["flagged"] >= len(listed["pending"]) > 0 and listed["scored"] == 240
    first, second = listed["pending"][0], listed["pending"][1]
    assert {"person_id", "attribute", "given_name", "suggested_name", "score", "images"} <= set(first)
    assert main(["review", "rq", "--accept", first["person_id"], "--into", "rt", "--runs-root", str(runs)]) == 0
    capsys.readouterr()
    path = runs / "corrections" / "rt.csv"
    assert list(load_corrections(path)["id"]) == [first["person_id"]]
    # the page reads the same file: the accepted person is counted and no longer offered
    at = app_test("pages/evaluate.py", runs_root=str(runs), data_root=str(root), eval_run="rq (out-of-fold)",
                  eval_corr_name="rt")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("1 accepted and 0 rejected in rt.csv" in c.value for c in at.caption)
    assert f"eval_accept_{first['person_id']}" not in [b.key for b in at.button]
    at.button(key=f"eval_accept_{second['person_id']}").click().run()  # the page writes: the CLI sees it
    assert main(["review", "rq", "--json", "--runs-root", str(runs), "--into", "rt"]) == 0
    pending = {r["person_id"] for r in json.loads(capsys.readouterr().out)["pending"]}
    assert not pending & {first["person_id"], second["person_id"]}
    assert reviewed_ids(path)[0] == {first["person_id"], second["person_id"]}
    assert main(["review", "rq", "--reject", "nobody", "--runs-root", str(runs)]) == 2
    assert "person 'nobody' is not in the review queue" in capsys.readouterr().err


@pytest.mark.slow
def test_the_evaluate_page_opens_on_the_largest_error_and_blanks_what_does_not_apply(flipped_folds):
    runs, root, _ = flipped_folds
    at = app_test("pages/evaluate.py", runs_root=str(runs), data_root=str(root), eval_run="rq (out-of-fold)")
    assert not at.exception
    true, pred = at.selectbox(key="eval_true").value, at.selectbox(key="eval_pred").value
    assert true != pred  # an off-diagonal cell: errors, not correct predictions
    probs = next(d.value for d in at.dataframe if d.value.index.name == "attribute")
    assert "None" not in probs.astype(str).to_numpy() and (probs.loc["gender"] == "").sum() == 6


def test_borderline_means_at_or_just_below_a_bound():
    b = AgeBounds(30, 60)
    assert is_borderline(np.array([28, 29, 30, 31, 58, 59, 60, 61]), b, 1).tolist() == \
        [False, True, True, False, False, True, True, False]
    assert is_borderline(np.array([27, 57, 60]), b, 3).tolist() == [True, True, True]
    assert is_borderline(np.array([60]), b, 0).tolist() == [True]  # the bound itself always counts


def test_only_flagged_people_are_queued_and_scores_follow_agreement():
    """Ten people, seven photos each; the model is sure of everyone's gender except two it calls the other."""
    rows = []
    rng = np.random.default_rng(0)
    for i in range(10):
        gender = i % 2
        for k in range(7):
            label = 2 * 6 + gender * 3 + 1  # mask: not worn, gender, age 30-59
            p = np.full(18, 0.001)
            believed = 1 - gender if i in (3, 4) and (i == 3 or k < 5) else gender
            p[2 * 6 + believed * 3 + 1] = 0.9 + 0.05 * rng.random()
            rows.append({"path": f"{i}/{k}.jpg", "person_id": f"{i:06d}", "label": label,
                         **{f"p{c}": v for c, v in enumerate(p / p.sum())}})
    q = review_queue(pd.DataFrame(rows))
    assert q.scored == 10 and list(q.main["person_id"]) == ["000003", "000004"]  # all seven agree, then five
    assert q.main["agreement"].round(2).tolist() == [1.0, 0.71] and q.main["score"].is_monotonic_decreasing


def _photos(person: str, age_band: int, believed_band: int, p: float, gender: int = 0) -> list[dict]:
    """Seven photos of one unmasked person whose age band the model reads as `believed_band` with probability p."""
    rows = []
    for k in range(7):
        probs = np.full(18, 0.001)
        probs[2 * 6 + gender * 3 + believed_band] = p
        probs[2 * 6 + gender * 3 + age_band] += 1 - p if believed_band != age_band else 0
        rows.append({"path": f"{person}/{k}.jpg", "person_id": person, "label": 2 * 6 + gender * 3 + age_band,
                     **{f"p{c}": v for c, v in enumerate(probs / probs.sum())}})
    return rows


def test_a_misreading_the_peers_share_is_the_model_not_the_label():
    """Twelve people in their thirties the model reads as <30 alike, twelve in their fifties read right, and one
    fifty-year-old read as <30: only that one departs from its peers, so only that one is flagged."""
    rows, ages = [], {}
    for i in range(12):
        rows += _photos(f"3{i:05d}", 1, 0, 0.9)
        ages[f"3{i:05d}"] = 31 + i % 8
        rows += _photos(f"5{i:05d}", 1, 1, 0.95)
        ages[f"5{i:05d}"] = 50 + i % 8
    rows += _photos("999999", 1, 0, 0.9)
    ages["999999"] = 54
    q = review_queue(pd.DataFrame(rows), AgeBounds(), 1, pd.Series(ages))
    assert list(q.main["person_id"]) == ["999999"] and q.flagged == 1
    assert q.main["typical"].iloc[0] < 0.1  # the fifty-year-old's peers are read right
    # without ages the peers are everyone with the same label: the thirties' shared misreading flags them all
    assert review_queue(pd.DataFrame(rows)).flagged == 13


@pytest.mark.slow
def test_accept_one_suggestion_and_the_next_run_reads_it(trained_run, studio_demo, tmp_path):
    runs_root, name, flipped = trained_run
    path = corrections_path(runs_root, "t-review")
    try:
        at = app_test("pages/evaluate.py", runs_root=str(runs_root), data_root=str(studio_demo), eval_run=name,
                      eval_corr_name="t-review")
        assert not at.exception and not at.error, [e.value for e in at.error]
        accept = [b for b in at.button if b.key and b.key.startswith("eval_accept_")]
        assert accept, "no suggestion to review"
        person = accept[0].key[len("eval_accept_"):]
        label = accept[0].label
        assert label.startswith("Accept: ")
        probs = [d for d in at.dataframe if d.value.index.name == "attribute"][0].value
        assert set(probs.index) == {"mask", "gender", "age"}  # the person's per-attribute probabilities
        accept[0].click().run()
        assert not at.exception
        table = load_corrections(path)
        assert list(table["id"]) == [person] and "relabelled in the studio" in table["note"].iloc[0]
        assert f"eval_accept_{person}" not in [b.key for b in at.button]  # reviewed: not offered again
        reject = next(b for b in at.button if b.key and b.key.startswith("eval_reject_"))
        rejected_person = reject.key[len("eval_reject_"):]
        reject.click().run()
        assert reviewed_ids(path) == ({person}, {rejected_person})
        assert "t-review (reviewed in the studio)" in at.selectbox(key="corrections").options  # the sidebar has it
        # the next training run reads it
        cfg = tiny(studio_demo, tmp_path, corrections=str(path), limit_batches=2)
        _, _, index = prepare_split(cfg.split_spec())
        rows = index.train[index.train["person_id"] == person]
        assert rows["corrected"].all()
        if table["gender"].iloc[0]:
            assert (rows["gender"] == GENDER_KEYS.index(table["gender"].iloc[0])).all()
        status = train_run(cfg, tmp_path / "runs", "after-review")
        assert status["state"] == "completed"
        assert RunFolder(tmp_path / "runs", "after-review").read_config()["corrections"] == str(path)
    finally:
        for p in (path, path.with_suffix(".rejected"), path.with_suffix(".journal")):
            p.unlink(missing_ok=True)


def test_suggested_corrections_cover_each_attribute():
    from maskcls.infer.evaluation import band_age, suggested_correction
    row = lambda a, s: pd.Series({"person_id": "000001", "attribute": a, "suggested": s, "suggestion": "x"})  # noqa: E731
    assert suggested_correction(row("gender", 1))["gender"] == GENDER_KEYS[1]
    assert suggested_correction(row("age", 2))["age"] == band_age(2) and band_age(2) >= 60
    assert 30 <= band_age(1) < 60 and band_age(0) < 30
    assert suggested_correction(row("mask swap", -1))["swap_mask"] == 1


def test_many_at_once_undo_explanations_and_a_weak_models_warning(tiny_run, tmp_path, capsys):
    """Issue 44: no given-label column, unexplained scores, 26 of 120 people flagged by a 0.16-F1 model without a
    warning, one accept at a time."""
    from conftest import copy_run
    runs, name = copy_run(tiny_run, tmp_path)
    assert main(["review", name, "--json", "--runs-root", str(runs)]) == 0
    listed = json.loads(capsys.readouterr().out, parse_constant=strict)
    assert "Do not trust these suggestions blindly" in listed["warning"] and "macro F1 on these people" in \
        listed["warning"]
    pending = listed["pending"]
    assert len(pending) >= 2 and all(p["why"] for p in pending)
    for p in pending:  # each score explained in the terms of its kind
        if p["attribute"] == "mask swap":
            assert "look like the other's label" in p["why"]
        else:
            assert f"prefer {p['suggested_name']} to the given {p['given_name']}" in p["why"]
    two = [p["person_id"] for p in pending[:2]]
    assert main(["review", name, "--accept", *two, "--runs-root", str(runs)]) == 0
    path = runs / "corrections" / "reviewed.csv"
    assert reviewed_ids(path)[0] == set(two)
    capsys.readouterr()
    assert main(["review", name, "--undo", "--runs-root", str(runs)]) == 0
    assert "undone:" in capsys.readouterr().out and reviewed_ids(path) == (set(), set())
    assert main(["review", name, "--undo", "--runs-root", str(runs)]) == 2
    assert "nothing to undo" in capsys.readouterr().err
