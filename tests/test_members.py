"""Tests of members."""
import pandas as pd

from conftest import run_cli
from maskcls.cli import main


def test_a_config_file_is_not_a_member_checkpoint(capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", "--data", str(tmp_path), "--members", "run:config.json",
                           "--out", str(tmp_path / "s.csv"))
    assert code == 2 and "'config.json' is not a checkpoint" in err and "code" not in err


def test_predict_members_take_run_folder_paths(tiny_run, demo_root, tmp_path, monkeypatch, capsys):
    runs, name = tiny_run
    monkeypatch.chdir(runs.parent)
    out = tmp_path / "sub.csv"
    assert main(["predict", "--data", str(demo_root), "--members", f"runs/{name}", f"{runs / name}:best.pt:2",
                 "--out", str(out), "--device", "cpu", "--quiet", "--cache-dir", str(tmp_path / "c")]) == 0
    assert len(pd.read_csv(out)) == len(pd.read_csv(demo_root / "eval/info.csv"))
