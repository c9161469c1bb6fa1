"""Hardening, round two: each hostile case ends in a message that says what was expected and what was found,
and nothing is lost or mixed. One test (or more) per numbered item of the issue."""
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import REPO, app_test, running_studio
from maskcls.augment.spec import AugmentSpec
from maskcls.cli import main
from maskcls.train.config import RunConfig
from maskcls.data.index import index_data
from maskcls.infer.predict import Member, write_submission
from maskcls.common.fileio import write_text
from maskcls.data.imageio import ImageError, load_rgb
from maskcls.augment.preview import load_source
from maskcls.common.procs import proc_start
from maskcls.train.rundir import RunDir, list_runs, load_checkpoint, save_checkpoint
from maskcls.runs.compare import delete_run
from maskcls.train.driver import train_from_config

from test_training import TINY


def tiny(demo_root, tmp_path, **kw) -> RunConfig:
    return RunConfig.from_dict({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "cache"), **kw})


def config_file(demo_root, tmp_path, **kw):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({**TINY, "data_root": str(demo_root), "cache_dir": str(tmp_path / "cache"), **kw}))
    return str(path)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def one_run(demo_root, tmp_path_factory):
    """A finished two-epoch run: (runs root, name)."""
    base = tmp_path_factory.mktemp("hard2")
    train_from_config(tiny(demo_root, base, epochs=2), base / "runs", "done")
    return base / "runs", "done"


# 1 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["running", "queued"])
def test_resume_of_a_queued_or_running_run_is_refused(one_run, capsys, state):
    runs, name = one_run
    run = RunDir(runs, name)
    before = (run.status_path.read_text(), run.metrics_path.read_text())
    status = json.loads(before[0])
    run.write_status(state=state, pid=os.getpid(), pid_start=proc_start(os.getpid()))  # a live process
    try:
        code, _, err = run_cli(capsys, "train", "--resume", name, "--runs-root", str(runs), "--quiet")
        assert code == 2 and f"it is {state}" in err and "cancel it first" in err
        assert run.metrics_path.read_text() == before[1]
    finally:
        write_text(run.status_path, json.dumps(status))


def test_resume_while_another_process_trains_the_folder_is_refused(one_run, capsys):
    runs, name = one_run
    run = RunDir(runs, name)
    held = run.acquire_lock()  # what a trainer holds while it trains
    try:
        code, _, err = run_cli(capsys, "train", "--resume", name, "--runs-root", str(runs), "--quiet")
        assert code == 2 and "another process" in err
    finally:
        held.close()


# 2 ------------------------------------------------------------------------------------------------------------
def test_train_into_an_existing_name_is_refused(one_run, demo_root, tmp_path, capsys):
    runs, name = one_run
    run = RunDir(runs, name)
    before = {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()}
    code, _, err = run_cli(capsys, "train", "--config", config_file(demo_root, tmp_path), "--runs-root", str(runs),
                           "--name", name, "--quiet")
    assert code == 2 and f"a run named {name!r} already exists" in err and "--resume" in err
    assert {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()} == before


# 3 ------------------------------------------------------------------------------------------------------------
def test_studio_config_applies_from_any_folder(tmp_path):
    script = REPO / "dashboard" / "Home.py"
    assert (REPO / "dashboard/.streamlit/config.toml").read_text() == (REPO / ".streamlit/config.toml").read_text()
    code = ("import sys; from streamlit import config; config._main_script_path = sys.argv[1]; "
            "config.get_config_options(force_reparse=True); "
            "print(config.get_option('server.address'), config.get_option('browser.gatherUsageStats'))")
    out = subprocess.run([sys.executable, "-c", code, str(script)], cwd=tmp_path, capture_output=True, text=True,
                         check=True, env={k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")})
    assert out.stdout.split()[-2:] == ["127.0.0.1", "False"], out.stdout


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = open(f"/proc/net/{name}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, _, st = line.split()[1], line.split()[2], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and st == "0A":  # LISTEN
                found.add(addr)
    return found


def test_studio_started_from_another_folder_listens_on_localhost_only(tmp_path, studio_demo):
    with running_studio(cwd=tmp_path, MASKCLS_RUNS=str(tmp_path / "runs")) as (_, port):
        addresses = listening_addresses(port)
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1 only, not 0.0.0.0 / ::


# 4 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weight", ["nan", "0", "-1", "inf", "abc"])
def test_member_weights_must_be_finite_and_positive(weight, capsys, tmp_path):
    with pytest.raises(ValueError, match="weight"):
        Member.parse(f"run::{weight}")
    code, _, err = run_cli(capsys, "predict", "--data", str(tmp_path), "--members", f"run::{weight}", "--out",
                           str(tmp_path / "s.csv"))
    assert code == 2 and f"{weight!r}" in err and not (tmp_path / "s.csv").exists()


def test_a_submission_with_non_finite_probabilities_is_refused(tmp_path):
    probs = np.full((3, 18), 1 / 18, np.float32)
    probs[1, 4] = np.nan
    with pytest.raises(ValueError, match="not finite for 1 image"):
        write_submission(tmp_path / "s.csv", ["a", "b", "c"], probs)
    assert not list(tmp_path.iterdir())


# 5 ------------------------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_image_root(tmp_path):
    folder = tmp_path / "root/train/images/000001_male_Asian_20"
    folder.mkdir(parents=True)
    for stem in ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"):
        Image.new("RGB", (48, 64), (120, 90, 60)).save(folder / f"{stem}.jpg")
    Image.new("RGB", (1, 1), (0, 0, 0)).save(folder / "mask1.jpg")
    return tmp_path / "root", folder / "mask1.jpg"


def test_a_1x1_image_gets_a_message_in_the_cli_and_the_library(tiny_image_root, tmp_path, capsys):
    _, small = tiny_image_root
    with pytest.raises(ImageError, match=r"image too small \(1x1\): expected at least 16x16"):
        load_source(str(small), AugmentSpec())
    code, _, err = run_cli(capsys, "augment", "preview", str(small), "--out", str(tmp_path / "g.png"))
    assert code == 2 and "image too small (1x1)" in err and "Traceback" not in err


def test_a_1x1_image_gets_a_message_on_the_augment_page(tiny_image_root, tmp_path):
    root, small = tiny_image_root
    at = app_test("pages/augment.py", data_root=str(root), runs_root=str(tmp_path), aug_path=str(small))
    assert not at.exception
    assert any("image too small" in e.value for e in at.error), [e.value for e in at.error]


def test_the_cache_skips_a_1x1_image_with_its_reason(tiny_image_root, tmp_path):
    from maskcls.data.cache import build_cache
    root, small = tiny_image_root
    paths = sorted(str(p) for p in small.parent.iterdir())
    cache = build_cache(paths, (64, 48), tmp_path / "c", None, 1)
    assert [(p, r) for p, r in cache.problems] == [(str(small), "image too small (1x1): expected at least 16x16 pixels")]


# 6 ------------------------------------------------------------------------------------------------------------
def test_files_get_the_mode_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.json", "{}")
        save_checkpoint(tmp_path / "c.pt", {"model": {}, "epoch": 1})
        write_submission(tmp_path / "s.csv", ["x"], np.full((1, 18), 1 / 18, np.float32))
        os.umask(0o027)
        write_text(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a.json": 0o644, "c.pt": 0o644, "s.csv": 0o644, "s.probs.csv": 0o644, "b.json": 0o640}


# 7 ------------------------------------------------------------------------------------------------------------
def copy_run(one_run, tmp_path):
    import shutil
    runs, name = one_run
    shutil.copytree(runs / name, tmp_path / "runs" / name, ignore=shutil.ignore_patterns(".train.lock"))
    return tmp_path / "runs", name


class Payload:
    def __reduce__(self):
        return (print, ("payload ran",))


@pytest.mark.parametrize("damage", ["missing", "truncated", "malicious"])
def test_evaluate_refuses_an_unusable_named_checkpoint(one_run, tmp_path, capsys, damage):
    runs, name = copy_run(one_run, tmp_path)
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


def test_evaluate_says_where_its_figures_come_from(one_run, tmp_path, capsys):
    runs, name = copy_run(one_run, tmp_path)
    code, out, _ = run_cli(capsys, "evaluate", name, "--runs-root", str(runs), "--json")
    best_epoch = load_checkpoint(runs / name / "best.pt")["epoch"]
    assert code == 0 and json.loads(out)["source"].startswith(f"validation predictions saved when best.pt was "
                                                               f"written (epoch {best_epoch})")
    RunDir(runs, name).write_status(predictions_epoch=99)  # saved predictions of another epoch: not used
    code, out, _ = run_cli(capsys, "evaluate", name, "--runs-root", str(runs), "--json")
    assert code == 0 and json.loads(out)["source"].startswith("predicted now with best.pt")


# 8 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, found", [("[1, 2]", "array"), ('"lr"', "string"), ("null", "null")])
def test_config_that_is_not_an_object(tmp_path, capsys, text, found):
    (tmp_path / "c.json").write_text(text)
    code, _, err = run_cli(capsys, "train", "--config", str(tmp_path / "c.json"), "--runs-root", str(tmp_path))
    assert code == 2 and "must hold a JSON object of config keys" in err and f"found a JSON {found}" in err


def test_config_naming_a_folder(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--config", str(tmp_path), "--runs-root", str(tmp_path))
    assert code == 2 and "is a folder, expected a JSON file" in err


@pytest.mark.parametrize("key", ["crop", "mean", "transforms"])
def test_augment_spec_with_wrong_kinds(tmp_path, capsys, key):
    (tmp_path / "s.json").write_text(json.dumps({key: 5}))
    code, _, err = run_cli(capsys, "augment", "save", "x", str(tmp_path / "s.json"), "--runs-root", str(tmp_path))
    assert code == 2 and f"{key}: expected" in err and "found a JSON number" in err


def test_out_naming_a_folder_or_an_unwritable_place(demo_root, tmp_path, capsys):
    code, _, err = run_cli(capsys, "predict", "--data", str(demo_root), "--members", "x", "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err
    code, _, err = run_cli(capsys, "predict", "--data", str(demo_root), "--members", "x", "--out",
                           str(tmp_path / "nope" / "s.csv"))
    assert code == 2 and "does not exist" in err
    image = next((demo_root / "train/images").iterdir()) / "mask1.jpg"
    code, _, err = run_cli(capsys, "augment", "preview", str(image), "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err


@pytest.mark.parametrize("value", ["Infinity", "NaN", "-Infinity"])
def test_non_finite_learning_rates_are_refused_in_the_config(demo_root, tmp_path, capsys, value):
    code, _, err = run_cli(capsys, "train", "--config", config_file(demo_root, tmp_path), "--set", f"lr={value}",
                           "--runs-root", str(tmp_path / "runs"), "--name", "x")
    assert code == 2 and "lr must be a finite number" in err and not (tmp_path / "runs" / "x").exists()


def test_a_vit_at_a_size_it_cannot_take_is_refused_before_training(demo_root, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--config", config_file(demo_root, tmp_path, model="vit_tiny_patch16_224"),
                           "--runs-root", str(tmp_path / "runs"), "--name", "vit")
    assert code == 2 and "fixed input size of 224x224" in err and "image_size=[224, 224]" in err
    assert not (tmp_path / "runs" / "vit").exists()


# 9 ------------------------------------------------------------------------------------------------------------
DISK_FULL = """
import resource, sys
import numpy as np
sys.path.insert(0, '.')
from maskcls.train.rundir import save_checkpoint
from maskcls.infer.predict import write_submission
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # the disk is "full" past 20 kB
try:
    save_checkpoint(sys.argv[1] + '/big.pt', {'model': {'w': np.zeros(100_000, np.float32)}, 'epoch': 1})
except OSError as e:
    print('CKPT', e.strerror)
try:
    write_submission(sys.argv[1] + '/sub.csv', ['x%d' % i for i in range(2000)], np.full((2000, 18), 1 / 18, np.float32))
except OSError as e:
    print('SUB', e.strerror)
"""


def test_full_disk_names_the_file_and_keeps_the_previous_submission_pair(tmp_path):
    (tmp_path / "sub.csv").write_text("ImageID,ans\nold,1\n")
    (tmp_path / "sub.probs.csv").write_text("ImageID,p0\nold,1.0\n")
    out = subprocess.run([sys.executable, "-c", DISK_FULL.replace("np.zeros(100_000, np.float32)",
                                                                  "__import__('torch').zeros(100_000)"), str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert "could not write" in lines["CKPT"] and "big.pt" in lines["CKPT"], out
    assert "file too large" in lines["CKPT"] and "inline_container" not in lines["CKPT"]
    assert "could not write" in lines["SUB"] and "sub" in lines["SUB"]
    assert (tmp_path / "sub.csv").read_text() == "ImageID,ans\nold,1\n"
    assert (tmp_path / "sub.probs.csv").read_text() == "ImageID,p0\nold,1.0\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


# 10 -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [["--set", "epochs=5"], ["--data", "/tmp"], ["--config", "x.json"]])
def test_resume_refuses_settings_it_cannot_apply(one_run, capsys, extra):
    runs, name = one_run
    code, _, err = run_cli(capsys, "train", "--resume", name, "--runs-root", str(runs), *extra)
    assert code == 2 and f"{extra[0]} cannot apply" in err


def test_resume_from_an_earlier_checkpoint_does_not_double_metrics_rows(demo_root, tmp_path):
    runs = tmp_path / "runs"
    train_from_config(tiny(demo_root, tmp_path, epochs=3), runs, "r")
    run = RunDir(runs, "r")
    (run.path / "last.pt").unlink()
    (run.path / "epoch_003.pt").unlink()  # as if killed before epoch 3's files landed
    run.write_status(state="failed")
    train_from_config(RunConfig(), runs, "r", resume=True)
    assert [m["epoch"] for m in run.read_metrics()] == [1, 2, 3]
    assert "dropped 1 metrics row" in run.log_path.read_text()


# 11 -----------------------------------------------------------------------------------------------------------
def test_epoch_files_hold_weights_only_and_only_the_newest_are_kept(demo_root, tmp_path):
    runs = tmp_path / "runs"
    train_from_config(tiny(demo_root, tmp_path, epochs=3, keep_epochs=2), runs, "k")
    run = RunDir(runs, "k")
    assert sorted(p.name for p in run.path.glob("epoch_*.pt")) == ["epoch_002.pt", "epoch_003.pt"]
    assert load_checkpoint(run.epoch_path(3)).get("optimizer") is None
    assert load_checkpoint(run.best_path).get("optimizer") is None
    assert load_checkpoint(run.last_path)["optimizer"] is not None
    assert run.epoch_path(3).stat().st_size < 0.6 * run.last_path.stat().st_size


# 12 -----------------------------------------------------------------------------------------------------------
def test_logs_of_a_run_that_does_not_exist(tmp_path, capsys):
    code, out, err = run_cli(capsys, "jobs", "logs", "NOSUCH", "--runs-root", str(tmp_path))
    assert code == 2 and "no run named 'NOSUCH'" in err and out == ""


def test_tuned_on_a_run_never_tuned(one_run, demo_root, tmp_path, capsys):
    runs, name = one_run
    code, _, err = run_cli(capsys, "predict", "--data", str(demo_root), "--runs-root", str(runs), "--members", name,
                           "--tuned", "--out", str(tmp_path / "s.csv"), "--quiet")
    assert code == 2 and "no tuned class biases" in err and "maskcls evaluate RUN --tune" in err


def test_a_config_file_is_not_a_member_checkpoint(capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", "--data", str(tmp_path), "--members", "run:config.json",
                           "--out", str(tmp_path / "s.csv"))
    assert code == 2 and "'config.json' is not a checkpoint" in err and "code" not in err


def test_a_folder_with_only_a_config_is_not_a_run(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "config.json").write_text(RunConfig().to_json())
    (tmp_path / "configs" / "mine.txt").write_text("keep me")
    assert [r.name for r in list_runs(tmp_path)] == []
    with pytest.raises(ValueError, match="not a run folder"):
        delete_run(tmp_path, "configs")
    assert (tmp_path / "configs" / "mine.txt").exists()


def test_a_person_id_in_two_folders_with_different_labels_is_reported(real_layout):
    problems = index_data(real_layout).problems
    dup = problems[problems["kind"] == "duplicate"]
    assert len(dup) == 1 and "003397" in dup["reason"].iloc[0] and "different age" in dup["reason"].iloc[0]


def test_repeated_eval_image_ids_are_flagged(demo_root, tmp_path):
    import shutil
    root = tmp_path / "d"
    shutil.copytree(demo_root, root, ignore=shutil.ignore_patterns(".maskcls-cache"))
    info = pd.read_csv(root / "eval/info.csv", dtype=str)
    pd.concat([info, info.head(2)]).to_csv(root / "eval/info.csv", index=False)
    reasons = index_data(root).problems["reason"].tolist()
    assert sum("listed 2 times in eval/info.csv" in r for r in reasons) == 2


def test_an_image_over_pils_bomb_limit_is_too_large_not_a_warning(tmp_path):
    Image.new("1", (10_000, 9_000)).save(tmp_path / "huge.png")  # 90 MP: past PIL's 89 MP warning
    with pytest.raises(ImageError) as e:
        load_rgb(tmp_path / "huge.png")
    assert "image too large (10000x9000" in e.value.reason and "DecompressionBomb" not in e.value.reason


def test_data_root_error_does_not_list_a_strangers_folder(tmp_path, capsys):
    (tmp_path / "secret-payroll.xlsx").write_text("x")
    code, _, err = run_cli(capsys, "scan", str(tmp_path))
    assert code == 2 and "secret-payroll" not in err and "<id>_<gender>_<race>_<age>" in err


def test_data_root_error_keeps_its_angle_brackets_in_the_studio(tmp_path):
    import ui
    (tmp_path / "x.txt").write_text("x")
    at = app_test(data_root=str(tmp_path))
    assert not at.exception
    shown = [e.value for e in at.error]
    assert shown and "\\<id\\>\\_\\<gender\\>" in shown[0] and "x.txt" not in shown[0]
    assert ui.markdown_escape("<a>_b*") == "\\<a\\>\\_b\\*"


def test_jobs_submit_with_a_missing_data_root_is_refused(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({**TINY, "data_root": str(tmp_path / "nowhere")}))
    code, _, err = run_cli(capsys, "jobs", "submit", str(tmp_path / "c.json"), "--runs-root", str(tmp_path / "runs"),
                           "--name", "j")
    assert code == 2 and "is not a folder" in err and not (tmp_path / "runs" / "j").exists()


def test_cancel_of_a_run_or_prediction_that_does_not_exist(tmp_path, capsys):
    code, _, err = run_cli(capsys, "jobs", "cancel", "nope", "--runs-root", str(tmp_path))
    assert code == 2 and "no run named 'nope'" in err
    code, _, err = run_cli(capsys, "predictions", "--cancel", "nope", "--runs-root", str(tmp_path))
    assert code == 2 and "no prediction named 'nope'" in err
