"""Relabelling in the studio (issue 16, step 6): review a likely label error, accept it with one click, and the
next training run reads the corrections file the review wrote."""
import pandas as pd

from conftest import app_test
from maskcls.data.corrections import corrections_path, load_corrections, reviewed_ids
from maskcls.data.labels import GENDER_KEYS
from maskcls.train.driver import prepare_split, train_from_config
from maskcls.train.rundir import RunDir

from test_training import tiny


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
        _, _, index = prepare_split(cfg)
        rows = index.train[index.train["person_id"] == person]
        assert rows["corrected"].all()
        if table["gender"].iloc[0]:
            assert (rows["gender"] == GENDER_KEYS.index(table["gender"].iloc[0])).all()
        status = train_from_config(cfg, tmp_path / "runs", "after-review")
        assert status["state"] == "completed"
        assert RunDir(tmp_path / "runs", "after-review").read_config()["corrections"] == str(path)
    finally:
        for p in (path, path.with_suffix(".rejected")):
            p.unlink(missing_ok=True)


def test_suggested_corrections_cover_each_attribute():
    from maskcls.infer.evaluation import band_age, suggested_correction
    row = lambda a, s: pd.Series({"person_id": "000001", "attribute": a, "suggested": s, "suggestion": "x"})  # noqa: E731
    assert suggested_correction(row("gender", 1))["gender"] == GENDER_KEYS[1]
    assert suggested_correction(row("age", 2))["age"] == band_age(2) and band_age(2) >= 60
    assert 30 <= band_age(1) < 60 and band_age(0) < 30
    assert suggested_correction(row("mask swap", -1))["swap_mask"] == 1
