"""The leaderboard log (issue 44): public scores recorded beside each submission's validation score, the private
range they give, the two finals, and the model's coverage checked by simulation."""
import json

import pytest

from conftest import copy_run, run_cli
from maskcls.infer.leaderboard import TAU0, Entry, choose_finals, private_range


def entry(name, val, public=None, half_width=0.04, people=540):
    return Entry(name, val, (val - half_width, val + half_width), people, public)


def test_a_public_score_narrows_the_private_range_and_pulls_it_toward_itself():
    e = entry("a", 0.75)
    before = private_range(e, [e], public_people=900, private_people=900)
    e.public = 0.70
    after = private_range(e, [e], public_people=900, private_people=900)
    assert after["range"][1] - after["range"][0] < before["range"][1] - before["range"][0]
    assert 0.70 < after["expected"] < 0.75 and after["expected"] < before["expected"]
    assert not after["shift_measured"]  # one submission cannot measure the validation-to-test shift (TAU0 then)


def test_a_shift_the_other_submissions_share_moves_the_expectation():
    """Every other submission scored 0.05 below its validation on the public board: a new one is expected lower
    than its validation before its own public score is known."""
    others = [entry(f"o{i}", 0.70 + 0.02 * i, 0.65 + 0.02 * i) for i in range(4)]
    new = entry("new", 0.80)
    r = private_range(new, others + [new], public_people=900, private_people=900)
    assert r["shift"] == pytest.approx(-0.05) and r["shift_measured"] and r["expected"] < 0.76


def test_finals_are_the_best_expected_and_the_safest_and_a_public_leader_is_named():
    rows = [{"name": n, "public": pub, "private": {"expected": exp, "range": [lo, hi]}}
            for n, pub, exp, lo, hi in (("a", 0.70, 0.74, 0.70, 0.78), ("b", 0.72, 0.73, 0.715, 0.745),
                                        ("c", 0.73, 0.71, 0.66, 0.76))]
    finals = choose_finals(rows)
    assert [f["name"] for f in finals] == ["a", "b", "c"] and finals[2]["not_chosen"]
    assert "best expected private" in finals[0]["why"] and "safest" in finals[1]["why"]
    assert "overfits" in finals[2]["why"]


@pytest.mark.parametrize("bad, why", [("78.12", "a percentage"), ("nan", "from 0 to 1"), ("-0.1", "from 0 to 1"),
                                      ("abc", "such as 0.7812")])
def test_a_public_score_is_a_macro_f1(bad, why):
    from maskcls.orchestration.leaderboard import check_score
    with pytest.raises(ValueError, match=why):
        check_score(bad)


def test_the_private_range_covers_about_95_percent_in_simulation():
    """The fast part of the study (docs/performance.md: 400 seasons per scenario)."""
    from maskcls.infer.leaderboard_check import coverage
    r = coverage(40, submissions=2, seed=7)
    assert 0.88 <= r["coverage"] <= 1.0 and abs(r["mean_error"]) < 0.01, r
    assert TAU0 > 0


@pytest.mark.slow
def test_record_scores_by_hand_and_from_the_platforms_csv_then_the_board(tiny_run, demo_root, tmp_path, capsys):
    from maskcls.orchestration.submissions import SubmissionRequest, create_submission
    runs, name = copy_run(tiny_run, tmp_path)
    for sub in ("sub1", "sub2"):
        create_submission(SubmissionRequest(str(demo_root), [name], "soft", tta=sub == "sub2"), runs, sub).run_here()
    code, out, err = run_cli(capsys, "submissions", "score", "sub1", "0.61", "--device", "cpu", "--runs-root", runs)
    assert code == 0 and "public 0.6100" in out and "validation 0." in out and "expected private" in out, err
    code, _, err = run_cli(capsys, "submissions", "score", "nosuch", "0.5", "--runs-root", runs)
    assert code == 2 and "no finished submission named 'nosuch'" in err
    code, _, err = run_cli(capsys, "submissions", "score", "sub1", "61.0", "--runs-root", runs)
    assert code == 2 and "a percentage" in err
    csv = tmp_path / "platform.csv"
    csv.write_text("File Name,Public Score\nsub2.csv,0.64\nelsewhere.csv,0.9\n")
    code, out, err = run_cli(capsys, "submissions", "score", "--from-csv", csv, "--runs-root", runs)
    assert code == 2 and "expected a column naming the submission" in err  # "File Name" is no known header
    csv.write_text("file_name,public_score\nsub2.csv,0.64\nelsewhere.csv,0.9\n")
    code, out, err = run_cli(capsys, "submissions", "score", "--from-csv", csv, "--runs-root", runs, "--json")
    done = json.loads(out)
    assert code == 0 and done["recorded"] == ["sub2"] and done["unmatched"] == ["elsewhere.csv"], err
    code, out, err = run_cli(capsys, "submissions", "leaderboard", "--runs-root", runs, "--json")
    board = json.loads(out)
    assert code == 0 and board["eval_people"] == 15 and {r["public"] for r in board["rows"]} == {0.61, 0.64}
    assert all(r["private"]["range"][0] <= r["private"]["expected"] <= r["private"]["range"][1] for r in board["rows"])
    assert {f["name"] for f in board["finals"] if not f.get("not_chosen")} == {"sub1", "sub2"}
