"""Issue 43: an outside round on main at 8b88d06 (76 new cases, 38 held), each case that broke reproduced as it
broke and fixed at its mechanism (docs/reliability.md, "Trust boundaries"). The team store's cases that need a real
server are in tests/test_team.py."""
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import copy_run, run_cli
from maskcls.common.fileio import write_json
from maskcls.common.runfolder import RunFolder


def forge(run: RunFolder, f1: float = 0.99) -> None:
    """What a teammate's store record claimed: F1 0.99 [0.98, 1.00] in status, intervals and metrics; the
    predictions and checkpoint unchanged."""
    run.write_status(best_f1=f1)
    write_json(run.intervals_path, {**run.read_intervals(), "macro_f1": f1, "macro_f1_ci": [0.98, 1.0]})
    rows = run.read_metrics()
    run.metrics_path.write_text("".join(json.dumps({**r, "val_macro_f1": f1}) + "\n" for r in rows))


def place_pulled(runs: Path, src: Path, data_root, tag_f1=None) -> RunFolder:
    """`src` pulled as alice/done the way pull_run places it: its figures recomputed in the partial folder first."""
    from maskcls.data.labels import AgeBounds
    from maskcls.orchestration.team.verify import verify_pulled
    partial = runs / "team" / "alice" / ".done.partial-v1"
    shutil.copytree(src, partial, ignore=shutil.ignore_patterns(".*.lock"))
    cfg = json.loads((partial / "config.json").read_text())
    checked = verify_pulled(partial, data_root=str(data_root), corrections="none", bounds=AgeBounds(30, 60),
                            tag_f1=tag_f1, cfg={**cfg, "data_root": str(data_root)})
    write_json(partial / ".team.json", {"member": "alice", "run": "done", "version": "v1", **checked})
    os.replace(partial, runs / "team" / "alice" / "done")
    return RunFolder.open(runs, "alice/done")


# -- high ---------------------------------------------------------------------------------------------------------
def test_a_pulled_runs_claims_are_recomputed_from_its_predictions(tiny_run, demo_root, tmp_path, capsys):
    from maskcls.infer.evaluation import report
    from maskcls.orchestration.run_index import index_rows
    runs, name = copy_run(tiny_run, tmp_path)
    honest = report(RunFolder(runs, name).read_predictions())["macro_f1"]
    forged = tmp_path / "forged"
    shutil.copytree(runs / name, forged)
    forge(RunFolder(tmp_path, "forged"))
    pulled = place_pulled(runs, forged, demo_root, tag_f1="0.99")
    origin = pulled.pulled()
    said = " ".join(origin["disagreements"])
    assert origin["verified"]["macro_f1"] == pytest.approx(honest, abs=1e-6)
    for claim in ("status.json claims best F1 0.99", "intervals.json claims macro F1 0.99", "metrics.jsonl claims",
                  "the store's record claims best F1 0.99"):
        assert claim in said, said
    row = next(r for r in index_rows(runs) if r["name"] == "alice/done")
    assert row["best macro F1"] == pytest.approx(honest, abs=1e-6) and row["F1 high"] < 0.98
    assert "its own files claimed other figures" in row["error"]
    assert pulled.read_status()["best_f1"] == pytest.approx(honest, abs=1e-6)  # every reader sees the recomputed
    assert all(m["val_macro_f1"] != 0.99 for m in pulled.read_metrics())
    assert json.loads((pulled.path / ".claimed" / "status.json").read_text())["best_f1"] == 0.99  # kept to look at
    code, out, _ = run_cli(capsys, "runs", "list", "--sort", "f1", "--runs-root", runs)
    assert code == 0 and "0.9900" not in out and "1.0000" not in out


def test_a_pulled_run_from_before_verification_shows_no_figure(tiny_run, tmp_path):
    from maskcls.orchestration.run_index import index_rows
    runs, name = copy_run(tiny_run, tmp_path)
    old = runs / "team" / "alice" / "done"
    shutil.copytree(runs / name, old)
    forge(RunFolder(old.parent, "done"))
    write_json(old / ".team.json", {"member": "alice", "run": "done", "version": "v0"})  # no "verified"
    row = next(r for r in index_rows(runs) if r["name"] == "alice/done")
    assert row["best macro F1"] is None and row["F1 low"] is None and "pull it again" in row["error"]


def test_a_pulled_runs_labels_and_paths_are_rebased_on_this_machines_data(tiny_run, demo_root, tmp_path):
    """A teammate's table names photos by their machine's paths; the pulled copy names this data root's files,
    and a label that differs from this data's is replaced (and counted)."""
    runs, name = copy_run(tiny_run, tmp_path)
    sent = tmp_path / "sent"
    shutil.copytree(runs / name, sent)
    preds = pd.read_csv(sent / "val_predictions.csv", dtype={"person_id": str})
    preds["path"] = "/home/alice/mask/train/images/" + preds["path"].str.split("/").str[-2:].str.join("/")
    preds.loc[0, "label"] = (preds.loc[0, "label"] + 1) % 18
    preds.to_csv(sent / "val_predictions.csv", index=False)
    pulled = place_pulled(runs, sent, demo_root)
    table = pulled.read_predictions()
    assert all(p.startswith(str(demo_root.resolve())) for p in table["path"])
    assert "1 label(s) differed from your data's" in pulled.pulled()["labels"]


def test_a_run_naming_a_photo_outside_its_data_root_is_never_opened(tiny_run, tmp_path, capsys):
    """A val_predictions.csv row naming /some/local/secret.png was opened and embedded (base64) in the report's
    Grad-CAM row."""
    from PIL import Image

    from maskcls.data.imageio import ImageError, resolve_image
    runs, name = copy_run(tiny_run, tmp_path)
    secret = tmp_path / "private"
    secret.mkdir()
    run = RunFolder(runs, name)
    preds = pd.read_csv(run.predictions_path, dtype={"person_id": str})
    for i in range(len(preds)):
        Image.new("RGB", (64, 48), (7, 77, 177)).save(secret / f"{i}.png")
    preds["path"] = [str(secret / f"{i}.png") for i in range(len(preds))]
    preds.to_csv(run.predictions_path, index=False)
    with pytest.raises(ImageError, match="not a photo of the run's data root"):
        resolve_image(run.read_config()["data_root"], secret / "0.png")
    code, _, err = run_cli(capsys, "report", "--runs", name, "--out", tmp_path / "r.html", "--runs-root", runs)
    html = (tmp_path / "r.html").read_text()
    assert code == 0, err
    assert "No Grad-CAM of the worst errors" in html and "not opened" in html
    assert "data:image/png;base64" not in html.split("<h2>Best model</h2>")[1].split("<h2>")[0]


@pytest.mark.parametrize("name", ["corrections", "team", "submissions", "sweeps", "ladders", "Team", "x-oof.csv"])
def test_reserved_names_are_refused_before_anything_is_made(name, demo_root, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--preset", "demo-cpu", "--data", demo_root, "--name", name,
                           "--runs-root", tmp_path / "runs")
    assert code == 2 and "reserved" in err, err
    assert not (tmp_path / "runs" / name).exists()


def test_outputs_never_land_on_a_runs_own_files(tiny_run, demo_root, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    (tmp_path / "link.csv").symlink_to(run.predictions_path)
    for out in (run.best_path, run.config_path, run.predictions_path, run.path / "new.csv", tmp_path / "link.csv",
                runs / "corrections" / "x.csv", runs / ".run-index.json", demo_root / "eval" / "info.csv"):
        code, _, err = run_cli(capsys, "predict", "--data", demo_root, "--members", name, "--out", out,
                               "--runs-root", runs, "--quiet")
        assert code == 2 and "--out" in err, (out, err)
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before


def test_report_outputs_are_guarded_before_anything_is_written(tiny_run, tmp_path, capsys):
    runs, _ = copy_run(tiny_run, tmp_path)
    x = tmp_path / "x"
    x.mkdir()
    notes = x / "report.md"
    notes.write_text("## Data\nour notes\n")
    code, _, err = run_cli(capsys, "report", "--notes", notes, "--out", x / "report.html", "--runs-root", runs)
    assert code == 2 and "also a file this command reads" in err and notes.read_text() == "## Data\nour notes\n"
    (tmp_path / "r_figures").write_text("not a folder")
    code, _, err = run_cli(capsys, "report", "--out", tmp_path / "r.html", "--runs-root", runs)
    assert code == 2 and "r_figures" in err and not (tmp_path / "r.html").exists()


def test_probabilities_that_are_not_probabilities_are_refused(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    preds = pd.read_csv(run.predictions_path)
    preds.loc[3, [f"p{i}" for i in range(18)]] = 0.0
    preds.to_csv(run.predictions_path, index=False)
    code, _, err = run_cli(capsys, "compare", name, name, "--runs-root", runs)
    assert code == 2 and "line 5 sum to 0, expected 1" in err


def test_a_degenerate_comparison_cannot_judge_from_the_cli(tiny_run, tmp_path, capsys):
    """Every validation person in one class gave "A is better than B by 0.333 [0.333, 0.333], p = 0"."""
    runs, name = copy_run(tiny_run, tmp_path)
    shutil.copytree(runs / name, runs / "b", ignore=shutil.ignore_patterns(".*.lock"))
    for n, right in ((name, 0.3), ("b", 0.9)):
        run = RunFolder(runs, n)
        preds = pd.read_csv(run.predictions_path)
        preds["label"] = 4
        hit = np.random.default_rng(1).random(len(preds)) < right
        probs = np.full((len(preds), 18), 0.01 / 17)
        probs[np.arange(len(preds)), np.where(hit, 4, 5)] = 0.99
        preds[[f"p{i}" for i in range(18)]] = probs
        preds.to_csv(run.predictions_path, index=False)
    code, out, err = run_cli(capsys, "compare", name, "b", "--runs-root", runs, "--json")
    c = json.loads(out)
    assert code == 0 and c["verdict"].startswith("cannot judge") and "one class" in c["verdict"], err
    assert c["interval"] is None and c["resolvable"] is None


def test_prune_keeps_a_checkpoint_a_running_prediction_loaded(tiny_run, demo_root, tmp_path, monkeypatch):
    """`runs prune` removed the checkpoint a running predict had loaded; predict then recorded in used_by.json a
    file that was gone."""
    import maskcls.infer.ensemble as ensemble
    from maskcls.infer.members import Member
    from maskcls.orchestration.prune import prune
    runs, name = copy_run(tiny_run, tmp_path)
    seen = {}
    real = ensemble.member_probabilities

    def prune_meanwhile(ctx, members):
        out = real(ctx, members)
        seen["plan"] = prune(runs)  # a prune in the middle of the prediction, after the checkpoint was loaded
        return out
    monkeypatch.setattr(ensemble, "member_probabilities", prune_meanwhile)
    ensemble.predict_submission(demo_root, runs, [Member(name, "epoch_001.pt")], "soft", tmp_path / "s.csv",
                                device="cpu", cache_dir=tmp_path / "cache")
    run = RunFolder(runs, name)
    assert (run.path / "epoch_001.pt").is_file() and "epoch_001.pt" in run.used_marks()
    assert any("a live command" in why for _, _, why in seen["plan"].keep)
    assert not any(f == "epoch_001.pt" for _, f, _ in seen["plan"].remove)


def test_a_prediction_waits_for_a_prune_that_holds_the_run(tiny_run, tmp_path):
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    held = run.try_exclusive_use()
    got = []
    t = threading.Thread(target=lambda: got.append(run.lease().__enter__()))
    t.start()
    time.sleep(0.3)
    assert not got  # waiting while the prune holds the run
    held.close()
    t.join(5)
    assert got == [None]


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "too-big"])
def test_notes_are_read_bounded(kind, tiny_run, tmp_path, capsys):
    """`report --notes /dev/zero` read until memory ran out, a FIFO hung it."""
    runs, _ = copy_run(tiny_run, tmp_path)
    notes = tmp_path / "notes.md"
    if kind == "dev-zero":
        notes = "/dev/zero"
    elif kind == "fifo":
        os.mkfifo(notes)
    else:
        with open(notes, "wb") as f:
            f.truncate(int(4.3 * 2 ** 20))
    t0 = time.monotonic()
    code, _, err = run_cli(capsys, "report", "--notes", notes, "--out", tmp_path / "r.html", "--runs-root", runs)
    assert code == 2 and "--notes" in err and time.monotonic() - t0 < 10, err
    assert {"dev-zero": "character device", "fifo": "named pipe", "too-big": "more than the 4 MB"}[kind] in err


def test_notes_parse_in_linear_time_and_keep_a_section_given_twice():
    from maskcls.wrapup.document import parse_notes
    notes = parse_notes("## Data\nfirst\n## Ladders\nx\n## Data\nsecond\n")
    assert notes["Data"] == "first\n\nsecond"
    big = "## Data\n" + "a line of notes\n" * 240_000  # 3.8 MB: was 14.8 s at 4.3 MB (quadratic)
    t0 = time.perf_counter()
    assert len(parse_notes(big)["Data"]) > 3_000_000
    assert time.perf_counter() - t0 < 5  # quadratic takes minutes here; linear well under a second


# -- medium and low -----------------------------------------------------------------------------------------------
def test_an_index_with_a_string_where_a_row_belongs_is_rebuilt(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    from maskcls.orchestration.run_index import INDEX_FILE, VERSION
    write_json(runs / INDEX_FILE, {"version": VERSION, "runs": {name: "oops", "x": {"row": 3}}, "groups": {"g": []}})
    code, out, err = run_cli(capsys, "runs", "list", "--runs-root", runs)
    assert code == 0 and name in out, err


def test_where_takes_list_values_and_refuses_what_cannot_match(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    code, out, _ = run_cli(capsys, "runs", "list", "--where", "image_size=[64,48]", "--runs-root", runs)
    assert code == 0 and name in out
    code, out, _ = run_cli(capsys, "runs", "list", "--where", "image_size=[64, 48]", "--runs-root", runs)
    assert code == 0 and name in out
    code, _, err = run_cli(capsys, "runs", "list", "--where", "image_size=64x48", "--runs-root", runs)
    assert code == 2 and "image_size" in err and "list" in err
    from maskcls.orchestration.run_index import parse_where, split_filters
    assert parse_where(split_filters("image_size=[64,48], lr=1e-3")) == {"image_size": [64, 48], "lr": 0.001}


def test_prune_leaves_links_alone_and_a_dangling_one_does_not_stop_it(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    run = RunFolder(runs, name)
    big = tmp_path / "elsewhere.bin"
    with open(big, "wb") as f:
        f.truncate(50_000_000)
    (run.path / "epoch_007.pt").symlink_to(big)
    (run.path / "epoch_009.pt").symlink_to(tmp_path / "gone.pt")
    code, out, err = run_cli(capsys, "runs", "prune", "--json", "--runs-root", runs)
    plan = json.loads(out)
    assert code == 0, err
    assert {r["file"] for r in plan["remove"]} == {"epoch_001.pt", "epoch_002.pt", "last.pt"}  # never the links
    assert plan["bytes"] < 10_000_000 and big.stat().st_size == 50_000_000
    assert (run.path / "epoch_007.pt").is_symlink() and (run.path / "epoch_009.pt").is_symlink()


def test_nan_and_out_of_range_f1_are_not_figures(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    for n, f1 in (("nan-run", "NaN"), ("big-run", "7.5")):
        shutil.copytree(runs / name, runs / n, ignore=shutil.ignore_patterns(".*.lock"))
        path = RunFolder(runs, n).metrics_path
        path.write_text("".join(line.replace('"val_macro_f1": ', f'"val_macro_f1": {f1}, "was": ') + "\n"
                                for line in path.read_text().splitlines()))
    code, out, _ = run_cli(capsys, "runs", "list", "--sort", "f1", "--json", "--runs-root", runs)
    rows = json.loads(out)
    assert rows[0]["name"] == name and all(r["best macro F1"] is None for r in rows[1:])


def test_a_repeat_group_of_two_configs_is_named_not_believed(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    for n in ("x-s1", "x-s2"):
        shutil.copytree(runs / name, runs / n, ignore=shutil.ignore_patterns(".*.lock"))
    other = RunFolder(runs, "x-s2")
    write_json(other.config_path, {**other.read_config(), "lr": 0.5, "split_seed": 7})
    code, _, err = run_cli(capsys, "compare", "x", name, "--runs-root", runs)
    assert code == 2 and "'x' is not a repeat group: x-s2 differs from x-s1 in lr, split_seed" in err
    code, out, err = run_cli(capsys, "compare", name, "x-s1", "--runs-root", runs)  # unrelated compares still work
    assert code == 0, err
    from maskcls.orchestration.compare import runs_table
    table = runs_table(runs)
    assert "not a group" in set(table["state"])


def test_pull_refuses_a_data_root_that_is_not_one_before_asking_the_store(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MASKCLS_TEAM", "http://127.0.0.1:9")
    code, _, err = run_cli(capsys, "team", "pull", "alice/base", "--data", "/nonexistent", "--runs-root", tmp_path)
    assert code == 2 and "--data '/nonexistent' is not a data root" in err


def test_a_teammates_run_not_yet_pulled_says_so(tiny_run, tmp_path, capsys):
    runs, _ = copy_run(tiny_run, tmp_path)
    for args in (["review", "alice/base"], ["evaluate", "alice/base"], ["compare", "done", "alice/base"]):
        code, _, err = run_cli(capsys, *args, "--runs-root", runs)
        assert code == 2 and "maskcls team pull alice/base" in err, (args, err)


def test_report_refuses_an_unknown_submission_or_ladder(tiny_run, tmp_path, capsys):
    runs, _ = copy_run(tiny_run, tmp_path)
    for flag, name in (("--submission", "nosuch"), ("--ladder", "nolad")):
        code, _, err = run_cli(capsys, "report", flag, name, "--out", tmp_path / "r.html", "--runs-root", runs)
        assert code == 2 and f"'{name}'" in err and not (tmp_path / "r.html").exists(), err


def test_the_markdown_report_escapes_html_as_the_html_does(tiny_run, tmp_path, capsys):
    runs, name = copy_run(tiny_run, tmp_path)
    shutil.copytree(runs / name, runs / "b", ignore=shutil.ignore_patterns(".*.lock"))
    b = RunFolder(runs, "b")
    write_json(b.config_path, {**b.read_config(), "track_project": "<script>alert(1)</script>"})
    notes = tmp_path / "n.md"
    notes.write_text("## Data\n<img src=x onerror=alert(2)>\n")
    code, _, err = run_cli(capsys, "report", "--title", "<b onmouseover=alert(3)>T</b>", "--notes", notes,
                           "--out", tmp_path / "r.html", "--runs-root", runs)
    md = (tmp_path / "r.md").read_text()
    assert code == 0, err
    for raw in ("<script>alert", "<img src=x", "<b onmouseover"):
        assert raw not in md and raw not in (tmp_path / "r.html").read_text()
    assert "&lt;script&gt;" in md


class FakeFile:
    def __init__(self, path, size):
        self.path, self.file_size = path, size


class FakeClient:
    """The two MlflowClient calls a pull's download makes, for the bounds that need no server."""

    def __init__(self, sizes):
        self.sizes = sizes

    def list_artifacts(self, run_id, path):
        return [FakeFile(f"{path}/{n}", s) for n, s in self.sizes.items()]

    def download_artifacts(self, run_id, path, dst):
        raise AssertionError("nothing may be downloaded")


def fake_store(sizes):
    from types import SimpleNamespace

    from maskcls.orchestration.team.store import TeamStore
    record = SimpleNamespace(info=SimpleNamespace(run_id="r1"), data=SimpleNamespace(tags={}))
    return TeamStore("http://127.0.0.1:9", FakeClient(sizes), "0"), record


def test_a_pull_refuses_a_file_larger_than_a_runs_file_may_be(tmp_path):
    """A 466 MB metrics.jsonl was pulled without a bound (then runs list took 11 s and 2.2 GB)."""
    from maskcls.orchestration.team.store import TeamError
    from maskcls.orchestration.team.pull import _download
    store, record = fake_store({"config.json": 900, "metrics.jsonl": 466_000_000, "best.pt": 90_000})
    with pytest.raises(TeamError, match=r"metrics.jsonl \(466.0 MB, at most 34 MB\)"):
        _download(store, record, "alice/big", tmp_path, "v1")


def test_a_pull_onto_a_full_disk_says_no_space(tmp_path, monkeypatch):
    import shutil as sh

    from maskcls.orchestration.team.store import TeamError
    from maskcls.orchestration.team.pull import _download
    store, record = fake_store({"config.json": 900, "best.pt": 90_000_000})
    monkeypatch.setattr(sh, "disk_usage", lambda p: sh._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(TeamError, match="needs 90 MB and the device holding .* has 1 MB free; nothing was pulled"):
        _download(store, record, "alice/big", tmp_path, "v1")


def one_hot_at_label(table: pd.DataFrame) -> pd.DataFrame:
    probs = np.eye(18)[table["label"].to_numpy()]
    return table.assign(**{f"p{i}": probs[:, i] for i in range(18)})


def test_a_consistent_forgery_is_caught_by_the_checkpoint(tiny_run, demo_root, tmp_path):
    """The outside round's high case: predictions forged one-hot at each label, history and claims made to agree
    (0.83 everywhere): the pull held the table against its checkpoint, found it is not the checkpoint's, and scored
    the checkpoint itself (0.044 here, as `predict --validate` says)."""
    from maskcls.infer.evaluation import report
    runs, name = copy_run(tiny_run, tmp_path)
    honest = report(RunFolder(runs, name).read_predictions())["macro_f1"]
    forged = tmp_path / "forged"
    shutil.copytree(runs / name, forged)
    run = RunFolder(tmp_path, "forged")
    table = pd.read_csv(run.predictions_path, dtype={"person_id": str})
    one_hot_at_label(table).to_csv(run.predictions_path, index=False)
    history = pd.read_csv(run.history_path, dtype={"person_id": str})
    history.assign(e1=history["label"], e2=history["label"]).to_csv(run.history_path, index=False)
    forge(run, report(one_hot_at_label(table))["macro_f1"])
    pulled = place_pulled(runs, forged, demo_root)
    said = " ".join(pulled.pulled()["disagreements"])
    assert "its predictions are not its checkpoint's" in said and "the class agrees on" in said
    assert pulled.pulled()["verified"]["macro_f1"] == pytest.approx(honest, abs=0.02)
    assert pulled.pulled()["verified"]["checked"] and not pulled.history_path.exists()


def test_a_cherry_picked_subset_of_the_validation_people_is_caught(tiny_run, demo_root, tmp_path):
    runs, name = copy_run(tiny_run, tmp_path)
    sent = tmp_path / "subset"
    shutil.copytree(runs / name, sent)
    table = pd.read_csv(sent / "val_predictions.csv", dtype={"person_id": str})
    right = table[table[[f"p{i}" for i in range(18)]].to_numpy().argmax(1) == table["label"]]
    right.to_csv(sent / "val_predictions.csv", index=False)
    pulled = place_pulled(runs, sent, demo_root)
    said = " ".join(pulled.pulled()["disagreements"])
    assert f"its predictions hold {len(right)} of the {len(table)} validation photos" in said
    assert len(pulled.read_predictions()) == len(table)  # the checkpoint's own, over the whole split
