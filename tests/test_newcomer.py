"""The newcomer path: the repo carries what its tests need, run folders by path, a talking `maskcls train`,
class names on class axes, and a confusion matrix whose cells report clicks."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, app_test
from maskcls import charts
from maskcls.cli import main
from maskcls.data.labels import class_names, short_class_names
from maskcls.data.reference import read_listing
from maskcls.train.rundir import RunDir

from test_training import TINY


def test_the_real_listing_travels_with_the_repo():
    train, ids = read_listing("train_image_paths.txt"), read_listing("eval_image_ids.txt")
    assert len(train) == 18_900 and len(set(train)) == 18_900
    assert len(ids) == 12_600 and ids != sorted(ids)
    assert train[0] == "train/images/000001_female_Asian_45/incorrect_mask.jpg"
    assert sum(p.endswith(".png") for p in train) == 511


def test_no_test_or_script_reads_outside_the_repository():
    pattern = re.compile(r"\.\./shared|parents?\[\d\]\s*/\s*[\"']shared|" + "MASKCLS_" + "REFERENCE")
    offenders = []
    for folder in ("tests", "benchmarks", ".ci", "maskcls", "dashboard", "pages"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh", "") and path != Path(__file__):
                text = path.read_text(errors="ignore")
                offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not offenders, offenders


def test_demo_data_from_the_carried_listing():
    """`demo-data --from-listing real` plans the real layout: all 2,700 folders and 12,600 eval ids in order
    (planned, not drawn: drawing 31,500 images is the GPU script's job, not a unit test's)."""
    from maskcls.data.demo import plan_from_listing, resolve_listing
    listing, eval_ids = resolve_listing("real", None)
    train, evals = plan_from_listing(listing, eval_ids, seed=0)
    assert len(train) == 2_700 and sum(len(s.names) for s in train) == 18_900
    assert any(s.folder == "001498-1_male_Asian_23" for s in train)
    planned = [name.split("/")[-1] for s in evals for name in s.names]
    assert sorted(planned) == sorted(read_listing("eval_image_ids.txt"))


# -- run arguments take a name or a run-folder path ------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(demo_root, tmp_path_factory):
    """A one-epoch run trained through the CLI: (runs root, run name)."""
    base = tmp_path_factory.mktemp("pathruns")
    cfg = base / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "data_root": str(demo_root), "cache_dir": str(base / "cache")}))
    assert main(["train", "--config", str(cfg), "--runs-root", str(base / "runs"), "--name", "r1", "--quiet"]) == 0
    return base / "runs", "r1"


@pytest.mark.parametrize("form", ["relative", "absolute", "trailing slash"])
def test_evaluate_takes_a_run_folder_path(small_run, form, monkeypatch, capsys):
    runs, name = small_run
    monkeypatch.chdir(runs.parent)
    ref = {"relative": f"runs/{name}", "absolute": str(runs / name), "trailing slash": f"runs/{name}/"}[form]
    assert main(["evaluate", ref, "--json"]) == 0  # no --runs-root: the path says where the run is
    out = json.loads(capsys.readouterr().out)
    assert out["run"] == name and out["path"] == str((runs / name).resolve()) and 0 <= out["macro_f1"] <= 1


def test_predict_members_take_run_folder_paths(small_run, demo_root, tmp_path, monkeypatch, capsys):
    runs, name = small_run
    monkeypatch.chdir(runs.parent)
    out = tmp_path / "sub.csv"
    assert main(["predict", "--data", str(demo_root), "--members", f"runs/{name}", f"{runs / name}:best.pt:2",
                 "--out", str(out), "--device", "cpu", "--quiet", "--cache-dir", str(tmp_path / "c")]) == 0
    assert len(pd.read_csv(out)) == len(pd.read_csv(demo_root / "eval/info.csv"))


def test_resume_jobs_and_predictions_take_paths(small_run, demo_root, tmp_path, monkeypatch, capsys):
    runs, name = small_run
    monkeypatch.chdir(runs.parent)
    assert main(["train", "--resume", f"./runs/{name}", "--quiet"]) == 0  # nothing left to train: completes at once
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["state"] == "completed"
    assert main(["jobs", "logs", f"runs/{name}", "--lines", "3"]) == 0
    assert "completed" in capsys.readouterr().out
    assert main(["jobs", "cancel", str(runs / name)]) == 2  # found by path; refused because it is not running
    assert f"run {name!r} is completed, not queued or running" in capsys.readouterr().err


def test_predictions_cancel_resolves_a_folder_path(tmp_path, monkeypatch, capsys):
    sub = tmp_path / "runs" / "submissions" / "p1"
    sub.mkdir(parents=True)
    (sub / "status.json").write_text(json.dumps({"state": "done"}))
    monkeypatch.chdir(tmp_path)
    assert main(["predictions", "--cancel", "runs/submissions/p1"]) == 2
    assert "prediction 'p1' is completed, not queued or running" in capsys.readouterr().err
    assert main(["predictions", "--cancel", str(tmp_path / "runs")]) == 2
    assert "not a prediction folder" in capsys.readouterr().err


def test_background_predict_stores_absolute_member_paths(small_run, demo_root, tmp_path, monkeypatch, capsys):
    runs, name = small_run
    monkeypatch.chdir(runs.parent)
    assert main(["predict", "--data", str(demo_root), "--members", f"runs/{name}", "--runs-root", str(tmp_path),
                 "--background", "bg", "--device", "cpu", "--cache-dir", str(tmp_path / "c")]) == 0
    req = json.loads((tmp_path / "submissions/bg/request.json").read_text())
    assert req["members"] == [f"{(runs / name).resolve()}:best.pt:1.0"]
    deadline = time.time() + 120
    while time.time() < deadline:
        state = json.loads((tmp_path / "submissions/bg/status.json").read_text()).get("state")
        if state in ("completed", "failed"):
            break
        time.sleep(0.5)
    assert state == "completed", (tmp_path / "submissions/bg/log.txt").read_text()


# -- the terminal hears about training as it goes --------------------------------------------------------------
def test_train_prints_each_epoch_as_it_ends(demo_root, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "epochs": 3, "data_root": str(demo_root), "cache_dir": str(tmp_path / "c")}))
    proc = subprocess.Popen([sys.executable, "-m", "maskcls", "train", "--config", str(cfg), "--runs-root",
                             str(tmp_path / "runs"), "--name", "talk"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    run = RunDir(tmp_path / "runs", "talk")
    seen_during = None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith("epoch 1/3:") and seen_during is None:
            seen_during = len(run.read_metrics())  # epoch 2 has not ended when epoch 1's line arrives
            assert proc.poll() is None
    assert proc.wait(120) == 0
    assert seen_during == 1, lines
    epoch_lines = [x for x in lines if re.match(r"epoch \d/3: train loss", x)]
    assert len(epoch_lines) == 3 and "ETA" in epoch_lines[0] and "val macro F1" in epoch_lines[0]
    assert json.loads(lines[-1])["state"] == "completed"


def test_train_quiet_prints_only_the_summary(demo_root, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "c")}))
    assert main(["train", "--config", str(cfg), "--runs-root", str(tmp_path / "runs"), "--name", "q", "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and json.loads(out[0])["state"] == "completed"


# -- class names on class axes, clickable confusion cells ------------------------------------------------------
def test_short_class_names_are_unique_and_readable():
    short = short_class_names()
    assert len(set(short)) == 18 and short[0] == "W/M/<30" and short[17] == "N/F/>=60"


def test_confusion_figure_reports_the_clicked_cell():
    matrix = [[(t * 18 + p) % 7 for p in range(18)] for t in range(18)]
    fig = charts.confusion_figure(matrix, short_class_names(), False, "", class_names())
    trace = fig.data[0]
    assert trace.type == "scatter"  # Streamlit reports clicks on scatter points, not on heatmap cells
    i = 2 * 18 + 1
    assert list(trace.customdata[i]) == [2, 1] and trace.text[i] == str(matrix[2][1])
    assert list(fig.layout.xaxis.ticktext) == short_class_names()
    event = {"selection": {"points": [{"x": 1, "y": 2, "customdata": {"0": 2, "1": 1}, "point_index": i}]}}
    assert charts.picked_cell(event) == (2, 1)
    assert charts.picked_cell({"selection": {"points": []}}) is None


def _figures(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def test_data_page_class_axes_show_class_names(studio_demo):
    at = app_test("pages/data.py")
    assert not at.exception
    ticks = [f["layout"]["xaxis"].get("ticktext") for f in _figures(at)]
    class_axes = [t for t in ticks if t and len(t) == 18]
    assert len(class_axes) >= 3 and all(t == short_class_names() for t in class_axes)  # counts + both splits


def test_evaluate_page_class_axes_show_class_names(trained_run):
    runs, name, _ = trained_run
    at = app_test("pages/evaluate.py", runs_root=str(runs))
    assert not at.exception
    figs = _figures(at)
    assert figs[0]["layout"]["xaxis"]["ticktext"] == short_class_names()
    assert figs[0]["layout"]["yaxis"]["ticktext"] == short_class_names()
    assert figs[0]["data"][0]["type"] == "scatter"


def test_picked_cell_reads_customdata_when_axes_give_no_numbers():
    assert charts.picked_cell({"selection": {"points": [{"customdata": {"0": 4, "1": 9}}]}}) == (4, 9)
    assert charts.picked_cell({"selection": {"points": [{"customdata": [4, 9]}]}}) == (4, 9)


def test_detached_processes_start_in_the_checkout():
    """Background jobs run `python -m maskcls` from the checkout, so they work without an installed package
    (PYTHONPATH=. on a GPU server) — the subpackage move must not have shifted that folder."""
    from maskcls.common import procs, settings
    assert procs.REPO == settings.REPO == REPO
    assert (procs.REPO / "maskcls" / "__main__.py").exists()
