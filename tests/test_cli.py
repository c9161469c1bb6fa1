"""The CLI against hostile input: every refusal says what was expected and what was found, before any work."""
import json
import os
import shutil

import pytest

from conftest import TINY
from maskcls.cli import main
from maskcls.common.runfolder import RunFolder


def sets(**kw) -> list[str]:
    return sum([["--set", f"{k}={json.dumps(v)}"] for k, v in {**TINY, **kw}.items()], [])


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("extra, flags", [
    (["--preset", "demo-cpu"], "--preset"), (["--config", "x.json"], "--config"), (["--data", "/d"], "--data"),
    (["--set", "lr=0.1"], "--set"), (["--folds", "3"], "--folds")])
def test_full_data_refuses_settings_it_cannot_apply(tmp_path, capsys, extra, flags):
    code, _, err = run_cli(capsys, "train", "--full-data", "some-run", "--runs-root", tmp_path, *extra)
    assert code == 2 and f"--full-data retrains RUN with RUN's own config.json, so {flags} cannot apply" in err


def test_full_data_of_a_run_that_does_not_exist_names_it(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--full-data", "nope", "--runs-root", tmp_path)
    assert code == 2 and f"no run named 'nope' in {tmp_path}" in err


def test_relative_paths_are_stored_absolute(demo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(demo_root.parent)
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, "train", "--data", demo_root.name, "--name", "rel", "--runs-root", runs, "--quiet",
                           *sets(limit_batches=1, cache_dir="rel-cache"))
    assert code == 0, err
    cfg = RunFolder(runs, "rel").read_config()
    assert cfg["data_root"] == str(demo_root) and cfg["cache_dir"] == str(demo_root.parent / "rel-cache")
    monkeypatch.chdir(tmp_path)  # evaluated from another folder, it still finds its data
    code, out, err = run_cli(capsys, "evaluate", "rel", "--checkpoint", "last.pt", "--runs-root", runs, "--json")
    assert code == 0, err
    assert json.loads(out)["images"] > 0


def test_drop_borderline_is_capped_and_empty_classes_are_named(demo_root, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--data", demo_root, "--runs-root", tmp_path / "r", *sets(drop_borderline=30))
    assert code == 2 and "drop_borderline 30 would leave out the whole 30-59 age band" in err and "at most 29" in err
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli(capsys, "train", "--data", demo_root, "--name", "wide", "--runs-root", tmp_path / "r",
                           "--quiet", *sets(drop_borderline=20, limit_batches=1, cache_dir=str(tmp_path / "c")))
    assert code == 0, err
    assert "WARNING: drop_borderline=20 leaves 9 class(es) with no training image (0, 1, 3, " in \
        RunFolder(tmp_path / "r", "wide").log_path.read_text()


def test_more_folds_than_people_is_refused_before_any_fold(demo_root, tmp_path, capsys):
    root = tmp_path / "eight"
    people = sorted((demo_root / "train" / "images").iterdir())[:8]
    for p in people:
        shutil.copytree(p, root / "train" / "images" / p.name)
    for cmd in (["train", "--data", root, "--name", "f", "--folds", "10"],
                ["jobs", "submit", tmp_path / "cfg.json", "--data", root, "--name", "f", "--folds", "10"]):
        (tmp_path / "cfg.json").write_text(json.dumps(TINY))
        code, _, err = run_cli(capsys, *cmd, "--runs-root", tmp_path / "r", *([] if cmd[0] == "jobs" else sets()))
        assert code == 2 and "--folds 10 needs at least 10 people" in err and "has 8" in err
        assert not (tmp_path / "r" / "f-fold1").exists()


def test_a_missing_corrections_file_is_refused_at_submit(demo_root, tmp_path, capsys):
    (tmp_path / "cfg.json").write_text(json.dumps({**TINY, "corrections": str(tmp_path / "nope.csv")}))
    code, _, err = run_cli(capsys, "jobs", "submit", tmp_path / "cfg.json", "--data", demo_root, "--name", "c",
                           "--runs-root", tmp_path / "r")
    assert code == 2 and "nope.csv" in err and "no such file" in err
    assert not (tmp_path / "r" / "c").exists()


def test_a_runs_root_that_is_a_file_is_named(demo_root, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for cmd in (["jobs", "list"], ["train", "--data", demo_root, "--name", "x", *sets()], ["sweep", "list"],
                ["predictions"]):
        code, _, err = run_cli(capsys, *cmd, "--runs-root", tmp_path / "file")
        assert code == 2 and f"runs root '{tmp_path / 'file'}' is a file, expected a folder" in err, (cmd, err)


def test_an_eval_list_with_only_a_header_is_refused_and_nothing_written(tmp_path, capsys):
    (tmp_path / "d" / "eval" / "images").mkdir(parents=True)
    (tmp_path / "d" / "eval" / "info.csv").write_text("ImageID,ans\n")
    out = tmp_path / "sub.csv"
    code, _, err = run_cli(capsys, "predict", "--data", tmp_path / "d", "--members", "any", "--out", out,
                           "--runs-root", tmp_path / "r", "--quiet")
    assert code == 2 and "eval/info.csv lists no images (only a header)" in err
    assert not out.exists() and not out.with_suffix(".probs.csv").exists()


@pytest.mark.parametrize("args, message", [
    (["--members", "0"], "--members must be at least 1, got 0"),
    (["--size", "0,0"], "--size expects HEIGHT,WIDTH in pixels, each at least 16 (e.g. 128,96); got '0,0'"),
    (["--size", "64"], "got '64'"),
    (["--batch", "0"], "--batch must be at least 1"),
])
def test_bench_arguments_are_checked(demo_root, capsys, args, message):
    code, _, err = run_cli(capsys, "bench", "infer", "--data", demo_root, *args)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("folder, why", [
    ("000001_Male_Asian_45", "gender 'Male' is not 'male' or 'female' (lowercase, as the competition writes it)"),
    ("000001_male_Asian_200", "age '200' is not a whole number from 0 to 120"),
    ("000001_male_Asian_-1", "age '-1' is not a whole number from 0 to 120"),
    ("00000x_male_Asian_45", "id '00000x' is not digits"),
    ("000001_male_45", "3 part(s) separated by '_', expected 4"),
])
def test_a_person_folder_says_which_part_is_wrong(demo_root, tmp_path, capsys, folder, why):
    root = tmp_path / "d"
    first = sorted((demo_root / "train" / "images").iterdir())[0]
    shutil.copytree(first, root / "train" / "images" / first.name)
    shutil.copytree(first, root / "train" / "images" / folder)
    code, out, _ = run_cli(capsys, "scan", root, "--json")
    skipped = {os.path.basename(r["path"]): r["reason"] for r in json.loads(out)["skipped"]}
    assert code == 0 and why in skipped[folder], skipped
    assert json.loads(out)["people"] == 1


def test_set_augment_takes_a_spec_object(demo_root, tmp_path, capsys):
    spec = {"transforms": [{"name": "hflip", "p": 0.5}]}
    code, _, err = run_cli(capsys, "train", "--data", demo_root, "--name", "aug", "--runs-root", tmp_path / "r",
                           "--quiet", *sets(limit_batches=1, cache_dir=str(tmp_path / "c")),
                           "--set", f"augment={json.dumps(spec)}")
    assert code == 0, err
    assert isinstance(RunFolder(tmp_path / "r", "aug").read_config()["augment"], dict)


LIGHT = [["--help"], ["jobs", "list"], ["submissions"], ["predictions"], ["sweep", "list"], ["sweep", "status", "s1"],
         ["sweep", "workers", "s1"]]


def test_listing_commands_import_no_torch(tmp_path, demo_root):
    """Listing and status answer without loading torch, scikit-learn or pandas (their time is a budget in `maskcls bench
    budgets`)."""
    import subprocess
    import sys
    from conftest import REPO
    from maskcls.orchestration.sweeps import create_sweep
    from maskcls.train.config import RunConfig
    runs = tmp_path / "runs"
    create_sweep(runs, "s1", RunConfig(data_root=str(demo_root)), {"lr": {"type": "float", "low": 0.001, "high": 0.01}})
    probe = ("import sys\nfrom maskcls.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "heavy = sorted(m for m in ('torch', 'torchvision', 'timm', 'sklearn', 'pandas') if m in sys.modules)\n"
             "print('HEAVY', heavy)\n")
    for args in LIGHT:
        extra = [] if args == ["--help"] else ["--runs-root", str(runs)]
        out = subprocess.run([sys.executable, "-c", probe, *args, *extra], capture_output=True, text=True, cwd=REPO)
        assert "HEAVY []" in out.stdout, (args, out.stdout[-500:], out.stderr[-2000:])


def test_a_file_where_a_folder_belongs_is_named_before_any_work(demo_root, tmp_path, capsys, monkeypatch):
    """A cache or runs path that is (or runs through) a file: the terminal names it and what belongs there, and the
    face search fails before MTCNN looks at a photo."""
    import os
    from maskcls.common.jobfolder import error_text
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(OSError) as exists:
        os.makedirs(a_file)
    with pytest.raises(OSError) as below:
        os.makedirs(a_file / "below")
    assert error_text(exists.value) == f"{a_file} is a file; expected a folder there"
    assert error_text(below.value) == f"{a_file / 'below'}: part of this path is a file; expected a folder there"
    from maskcls.data import faces
    monkeypatch.setattr(faces, "detect_boxes", lambda *a, **k: pytest.fail("MTCNN ran before the cache was checked"))
    assert main(["faces", str(demo_root), "--cache-dir", str(a_file), "--quiet"]) == 2
    assert f"maskcls faces: error: {a_file} is a file; expected a folder there" in capsys.readouterr().err


def test_config_keys_are_listed_and_typos_answered_with_close_matches_before_torch(tmp_path, capsys):
    """Issue 44: `train --help` listed no keys, an unknown key did not list the valid ones, and a typo took 8-23 s
    on a busy machine (torch imported first)."""
    import subprocess
    import sys
    from dataclasses import fields

    from maskcls.train.config import RunConfig
    code, out, _ = run_cli(capsys, "config", "keys", "--json")
    docs = json.loads(out)
    assert code == 0 and [d["key"] for d in docs] == [f.name for f in fields(RunConfig)]
    assert all(d["meaning"] for d in docs)
    code, out, _ = run_cli(capsys, "config", "show", "winners-2022")
    assert code == 0 and json.loads(out)["drop_borderline"] == 3
    code, _, err = run_cli(capsys, "config", "show", "winers-2022", "--runs-root", tmp_path)
    assert code == 2 and "did you mean 'winners-2022'" in err
    probe = ("import sys, maskcls.cli as c\ncode = c.main(sys.argv[1:])\n"
             "print('torch' in sys.modules, file=sys.stderr)\nsys.exit(code)")
    for args, said in ((["--set", "lrr=0.1"], "did you mean 'lr'?"), (["--preset", "demo-gpu"], "did you mean "
                                                                        "'demo-cpu'?")):
        out = subprocess.run([sys.executable, "-c", probe, "train", *args, "--data", str(tmp_path)],
                             capture_output=True, text=True)
        assert out.returncode == 2 and said in out.stderr and out.stderr.strip().endswith("False"), out.stderr
        if said.startswith("did you mean 'lr'"):
            assert "`maskcls config keys`" in out.stderr and "weight_decay" in out.stderr
    with pytest.raises(SystemExit):
        run_cli(capsys, "train", "--help")
    assert "maskcls config keys" in capsys.readouterr().out


def test_a_saved_spec_is_used_by_name_and_a_typo_lists_presets_and_saved_specs(demo_root, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    from maskcls.augment.spec import create_preset
    spec.write_text(create_preset("strong").to_json())
    runs = tmp_path / "runs"
    assert run_cli(capsys, "augment", "save", "mine", spec, "--runs-root", runs)[0] == 0
    code, _, err = run_cli(capsys, "train", "--data", demo_root, "--preset", "demo-cpu", "--set", "augment=mien",
                           "--runs-root", runs, "--name", "x")
    assert code == 2 and "no spec saved" in err and "(mine)" in err and "did you mean 'mine'" in err
    from maskcls.cli.common import config_from_args, saved_spec_override
    from types import SimpleNamespace
    args = SimpleNamespace(preset="demo-cpu", data=str(demo_root), set=["augment=mine"], track=None,
                           runs_root=str(runs))
    cfg = config_from_args(args)
    assert isinstance(cfg.augment, dict) and cfg.augment == create_preset("strong").to_dict()
    assert saved_spec_override("lr=0.1", args) == "lr=0.1"
