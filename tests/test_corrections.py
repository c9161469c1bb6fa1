"""Label corrections: every row either applies or is reported; impossible rows are refused by line."""
import pytest
from hypothesis import example, HealthCheck, given, settings, strategies as st

from conftest import app_test
from maskcls.cli import main
from maskcls.data.corrections import load_corrections
from maskcls.data.index import index_data


def write(tmp_path, text: str):
    path = tmp_path / "fix.csv"
    path.write_text("id,gender,age,swap_mask,note\n" + text)
    return path


def test_ids_that_match_nobody_are_reported(demo_root, tmp_path, capsys):
    path = write(tmp_path, "1,female,,0,zeros stripped\n999999,male,,0,nobody\n000002,,50,0,real\n")
    index = index_data(demo_root, corrections=load_corrections(path))
    info = index.train.attrs["corrections"]
    assert info["rows"] == 3 and info["applied"] == 1
    reasons = {u["id"]: u["reason"] for u in info["unmatched"]}
    assert "'000001' does (a spreadsheet may have stripped the leading zeros)" in reasons["1"]
    assert reasons["999999"] == "no person has id '999999' in this data root"
    assert set(index.problems.loc[index.problems["kind"] == "corrections", "path"]) == {"corrections line 2",
                                                                                       "corrections line 3"}
    assert main(["scan", str(demo_root), "--corrections", str(path)]) == 0
    out = capsys.readouterr().out
    assert "label corrections: 1 of 3 row(s) applied; 2 id(s) match no person: line 2: no person has id '1'" in out
    saved = tmp_path / "runs" / "corrections" / "fix.csv"  # where the sidebar lists named corrections files
    saved.parent.mkdir(parents=True)
    saved.write_text(path.read_text())
    at = app_test("pages/data.py", data_root=str(demo_root), runs_root=str(tmp_path / "runs"),
                  corrections=str(saved.resolve()))
    assert any("2 id(s) match no person" in w.value.replace("\\", "") for w in at.warning), [w.value for w in at.warning]


@pytest.mark.parametrize("rows, message", [
    ("000001,,121,0,\n", "line 2: age must be a whole number from 0 to 120, got '121'"),
    ("000001,,-1,0,\n", "line 2: age must be a whole number from 0 to 120, got '-1'"),
    ("000001,female,,0,\n000002,,,1,\n000001,male,,0,\n", "line 4: id 000001 repeats line 2"),
    (",female,,0,\n", "line 2: id is empty"),
])
def test_impossible_rows_are_refused_by_line(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        load_corrections(write(tmp_path, rows))


@pytest.mark.parametrize("content, message", [
    (b"\xbc\x8f\x00\xff binary", "is not UTF-8 text"),
    (b"", "is empty"),
    (b'root:x:0:0\n"unterminated,\n', "is not a CSV table"),
])
def test_a_file_that_is_no_corrections_table_is_named_with_what_was_expected(tmp_path, capsys, content, message):
    path = tmp_path / "fix.csv"
    path.write_bytes(content)
    assert main(["scan", str(tmp_path), "--corrections", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"corrections {str(path)!r} {message}" in err and "expected a CSV with columns id, gender, age" in err, err
    assert "Traceback" not in err


def test_the_training_log_says_what_the_corrections_did(demo_root, tmp_path):
    from maskcls.train.config import RunConfig
    from maskcls.train.driver import train_run
    from maskcls.common.runfolder import RunFolder
    from conftest import TINY
    path = write(tmp_path, "1,female,,0,\n")
    cfg = RunConfig.from_dict({**TINY, "data_root": str(demo_root), "corrections": str(path),
                               "cache_dir": str(tmp_path / "cache"), "limit_batches": 1})
    train_run(cfg, tmp_path / "runs", "c")
    log = RunFolder(tmp_path / "runs", "c").log_path.read_text()
    assert "label corrections: 0 of 1 row(s) applied; 1 id(s) match no person: line 2: no person has id '1'" in log


# -- the review's corrections file: concurrent writers, round trips ------------------------------------------
def _decide(args):
    path, kind, pid, barrier = args
    from maskcls.data.corrections import accept_correction, reject_suggestion
    barrier.wait()
    if kind == "accept":
        accept_correction(path, {"id": pid, "gender": "female", "note": f"accepted by writer {pid}"})
    else:
        reject_suggestion(path, pid)


@pytest.mark.slow  # 16 writer processes (20 s): the suite's, not the inner loop's
def test_concurrent_accepts_and_rejects_all_land(tmp_path):
    """Issue 35 #3: four `review --accept` at once printed "accepted" four times and the file held three."""
    import multiprocessing as mp
    from maskcls.data.corrections import reviewed_ids
    path = tmp_path / "corrections" / "race.csv"
    ctx = mp.get_context("spawn")
    accepts, rejects = [f"{i:06d}" for i in range(1, 11)], [f"{i:06d}" for i in range(50, 56)]
    with ctx.Manager() as manager:
        barrier = manager.Barrier(len(accepts) + len(rejects))
        jobs = [(path, "accept", p, barrier) for p in accepts] + [(path, "reject", p, barrier) for p in rejects]
        with ctx.Pool(len(jobs)) as pool:
            pool.map(_decide, jobs)
    accepted, rejected = reviewed_ids(path)
    assert accepted == set(accepts) and rejected == set(rejects)
    assert sorted(load_corrections(path)["note"]) == sorted(f"accepted by writer {p}" for p in accepts)


id_text = st.from_regex(r"\A[0-9]{6}(-[0-9])?\Z")
decision = st.tuples(st.sampled_from(["accept", "reject"]), id_text, st.sampled_from(["", "male", "female"]),
                     st.one_of(st.just(""), st.integers(0, 120).map(str)), st.sampled_from(["", "0", "1"]),
                     st.text(st.characters(exclude_categories=("Cs",)), max_size=30))


@pytest.mark.slow  # one of the inner loop's slowest: the suite runs it
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(decision, max_size=12), st.sampled_from(["", " "]))
@example([("accept", "000000", "", "", "", "x\r0")], "")  # a lone carriage return in a note (it made a row '0')
def test_the_corrections_file_holds_the_last_decision_for_each_person(tmp_path, decisions, pad):
    """Whatever a note holds (commas, quotes, new lines, any script) and however an id is padded, the file reads
    back as the last accepted row per person, and every rejection is kept."""
    import uuid
    from maskcls.data.corrections import accept_correction, reject_suggestion, reviewed_ids
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    want, rejected = {}, set()
    for kind, pid, gender, age, swap, note in decisions:
        if kind == "accept":
            accept_correction(path, {"id": pad + pid, "gender": gender, "age": age, "swap_mask": swap, "note": note})
            want[pid] = (gender, age, swap, note)
        else:
            reject_suggestion(path, pad + pid)
            rejected.add(pid)
    accepted, got_rejected = reviewed_ids(path)
    assert accepted == set(want) and got_rejected == rejected
    if want:
        table = load_corrections(path)
        assert {r.id: (r.gender, r.age, r.swap_mask, r.note) for r in table.itertuples()} == want


def test_many_decisions_at_once_and_undo_puts_back_exactly_what_was_there(tmp_path):
    """Issue 44: the winners relabelled about 1,400 photos; one decision takes many people, and an undo restores
    the rows and rejections the last decision replaced (a replaced correction comes back, not just goes away)."""
    from maskcls.data.corrections import decide, reviewed_ids, undo_last
    path = tmp_path / "reviewed.csv"
    decide(path, accept=[{"id": "000001", "gender": "female", "note": "first"}])
    decide(path, accept=[{"id": "000001", "gender": "male", "note": "second"},
                         {"id": "000002", "age": "45", "note": "new"}], reject=["000003"])
    assert reviewed_ids(path) == ({"000001", "000002"}, {"000003"})
    assert set(undo_last(path)) == {"000001", "000002", "000003"}
    table = load_corrections(path)
    assert reviewed_ids(path) == ({"000001"}, set()) and table.iloc[0]["note"] == "first"
    assert undo_last(path) == ["000001"] and reviewed_ids(path) == (set(), set())
    with pytest.raises(ValueError, match="nothing to undo"):
        undo_last(path)
