"""The data index: the competition layout read into tables, its quirks reported, never fatal."""
import contextlib
import io
import json
import os
import shutil
import signal

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from maskcls.cli import main
from maskcls.data.cache import build_cache
from maskcls.data.corrections import load_corrections
from maskcls.data.index import DataRootError, index_data, with_bounds
from maskcls.data.labels import AgeBounds
from maskcls.infer.submission import eval_paths


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


def test_data_root_error_does_not_list_a_strangers_folder(tmp_path, capsys):
    (tmp_path / "secret-payroll.xlsx").write_text("x")
    code, _, err = run_cli(capsys, "scan", str(tmp_path))
    assert code == 2 and "secret-payroll" not in err and "<id>_<gender>_<race>_<age>" in err


@pytest.fixture
def data(demo_root, tmp_path):
    root = tmp_path / "my data"  # a space in the root
    shutil.copytree(demo_root / "train", root / "train")
    shutil.copytree(demo_root / "eval", root / "eval")
    return root


def person(root, i=0):
    return sorted((root / "train/images").iterdir())[i]


# -- data ---------------------------------------------------------------------------------------------------
def test_empty_folder_and_wrong_layout(tmp_path):
    with pytest.raises(DataRootError, match="not in the competition layout.*found an empty folder"):
        index_data(tmp_path)
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataRootError, match=r"expected .*train/images.*found no train/images folder in it") as e:
        index_data(tmp_path)
    assert "photos" not in str(e.value)  # what a stranger's folder holds is not listed


def test_bad_files_are_skipped_and_named_the_rest_is_indexed(data):
    p0, p1 = person(data, 0), person(data, 1)
    (p0 / "mask2.jpg").write_bytes(b"")  # zero bytes
    (data / "train/images/000999_robot_Asian_40").mkdir()  # folder name does not parse
    (p1 / "mask3 .jpg").write_bytes((p1 / "mask3.jpg").read_bytes())  # spaced name
    odd = os.fsencode(str(p1)) + b"/mask\xff.jpg"  # a non-UTF-8 file name
    with open(odd, "wb") as f:
        f.write(b"\xff\xd8\xff")
    idx = index_data(data)
    reasons = {os.path.basename(p): r for p, r in zip(idx.skipped["path"], idx.skipped["reason"])}
    assert "0 bytes" in reasons["mask2.jpg"]
    assert "does not parse" in reasons["000999_robot_Asian_40"]
    assert "unknown file name 'mask3 '" in reasons["mask3 .jpg"]
    assert any(k.startswith("mask\ufffd") for k in reasons)  # shown, not crashing on the bytes
    assert idx.train["folder"].nunique() == 60 and len(idx.train) == 60 * 7 - 1
    idx.problems.to_csv(io.StringIO())  # printable everywhere
    from maskcls.common.runfolder import RunFolder
    run = RunFolder(data, "r")
    run.path.mkdir()
    run.log("skipped " + os.fsdecode(odd))


def test_truncated_jpeg_is_reported_by_the_cache_and_training_goes_on(data, tmp_path):
    paths = index_data(data).train["path"].tolist()[:10]
    with open(paths[2], "r+b") as f:
        f.truncate(200)
    cache = build_cache(paths, (64, 48), tmp_path / "c", workers=1)
    assert cache.ok.sum() == 9 and cache.problems[0][0] == paths[2] and "cannot decode" in cache.problems[0][1]


def test_eval_info_missing_or_naming_absent_images(data):
    (data / "eval/info.csv").unlink()
    idx = index_data(data)
    assert idx.eval is None and "info.csv is missing" in idx.problems["reason"].str.cat()
    with pytest.raises(ValueError, match="info.csv is missing"):
        eval_paths(data)


@contextlib.contextmanager
def no_hang(seconds=30):
    """Fail, not hang, when a reader blocks (a named pipe opened for reading waits for a writer for ever)."""
    def alarm(*_):
        raise TimeoutError(f"blocked for {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_named_pipes_devices_and_sockets_are_skipped_never_opened(data, tmp_path):
    """Issue 35 #2: a FIFO where a photo should be hung the scan (and the Data page, training, predict)."""
    p0 = person(data, 0)
    (p0 / "mask1.jpg").unlink()
    os.mkfifo(p0 / "mask1.jpg")
    (p0 / "mask2.jpg").unlink()
    os.symlink("/dev/zero", p0 / "mask2.jpg")  # a device that would stream zeros without end
    (p0 / "mask3.jpg").unlink()
    (p0 / "mask3.jpg").mkdir()
    eval_id = pd.read_csv(data / "eval/info.csv")["ImageID"].iloc[0]
    (data / "eval/images" / eval_id).unlink()
    os.mkfifo(data / "eval/images" / eval_id)
    with no_hang():
        idx = index_data(data)
        reasons = dict(zip(idx.skipped["path"], idx.skipped["reason"]))
        assert reasons[str(p0 / "mask1.jpg")] == "not a regular file: a named pipe (FIFO)"
        assert reasons[str(p0 / "mask2.jpg")] == "not a regular file: a character device"
        assert reasons[str(p0 / "mask3.jpg")] == "not a regular file: a folder"
        assert len(idx.train) == 60 * 7 - 3
        with pytest.raises(ValueError, match=f"{eval_id} \\(unusable: not a regular file: a named pipe"):
            eval_paths(data)
        from maskcls.data.imageio import ImageError, load_rgb
        with pytest.raises(ImageError, match="named pipe"):  # the decoder never blocks on one either
            load_rgb(p0 / "mask1.jpg")
        cache = build_cache([str(p0 / "mask1.jpg"), str(p0 / "mask4.jpg")], (32, 32), tmp_path / "c", workers=1)
        assert cache.ok.tolist() == [False, True] and "named pipe" in cache.problems[0][1]


def test_link_loops_and_dangling_links_are_skipped_by_name(data):
    """Issue 35 #5: a person folder that is a link to itself stopped the whole scan ("Too many levels of symbolic
    links"); a dangling link was reported as "a file"."""
    images = data / "train/images"
    os.symlink("000099_female_Asian_40", images / "000099_female_Asian_40")
    os.symlink("gone", images / "000098_male_Asian_30")
    p0 = person(data, 0)
    (p0 / "normal.jpg").unlink()
    os.symlink("normal.jpg", p0 / "normal.jpg")
    idx = index_data(data)
    reasons = dict(zip(idx.skipped["path"], idx.skipped["reason"]))
    assert reasons[str(images / "000099_female_Asian_40")] == ("a symbolic link loop (it leads back to itself) where "
                                                               "a person folder was expected")
    assert reasons[str(images / "000098_male_Asian_30")].startswith("a dangling symbolic link (to 'gone'")
    assert reasons[str(p0 / "normal.jpg")] == "a symbolic link loop (it leads back to itself)"
    assert idx.train["folder"].nunique() == 60


REAL_CLASS_COUNTS = [2745, 2050, 415, 3660, 4085, 545, 549, 410, 83, 732, 817, 109, 549, 410, 83, 732, 817, 109]


def test_real_layout_is_indexed_with_its_quirks(real_layout):
    idx = index_data(real_layout)
    assert idx.train["folder"].nunique() == 2700
    assert len(idx.train) == 18900 - 1  # the corrupt mask3 is skipped
    skipped = idx.skipped
    assert len(skipped) == 3
    assert skipped["reason"].str.contains("AppleDouble").sum() == 2
    assert skipped["path"].str.endswith("000004_male_Asian_54/mask3.jpg").any()
    missing = idx.problems[idx.problems["kind"] == "missing"]
    assert list(missing["path"].str.contains("000004_male_Asian_54/mask3")) == [True]
    ext = idx.train["file"].str.rsplit(".", n=1).str[1].value_counts()
    assert ext["jpg"] == 18035 - 1 and ext["jpeg"] == 354 and ext["png"] == 511
    assert (idx.train["person_id"] == "001498-1").sum() == 7
    assert idx.train.loc[idx.train["person_id"] == "003397", "folder"].nunique() == 2
    counts = np.bincount(idx.train["label"], minlength=18)
    expected = np.array(REAL_CLASS_COUNTS)
    expected[1] -= 1  # 000004 male 54 lost one wear image
    assert counts.tolist() == expected.tolist()


def test_age_bounds_flow_through_labels(real_layout):
    idx = index_data(real_layout)
    moved = with_bounds(idx, AgeBounds(30, 58))
    old = (idx.train["age_band"] == 2).sum()
    new = (moved.train["age_band"] == 2).sum()
    assert new == old + 7 * (159 + 85)  # people aged 58 and 59 move to the top band


def test_community_corrections_apply(real_layout):
    idx = index_data(real_layout, corrections=load_corrections("community"))
    t = idx.train
    assert set(t.loc[t["person_id"] == "004432", "gender"]) == {1}
    assert set(t.loc[t["person_id"] == "006359", "gender"]) == {0}
    swapped = t[(t["person_id"] == "000020")].set_index("file")["mask"]
    assert swapped["incorrect_mask.jpg"] == 2 and swapped["normal.jpg"] == 1 and swapped["mask1.jpg"] == 0


def test_bad_corrections_name_the_line(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("id,gender\n000001,robot\n")
    with pytest.raises(ValueError, match="line 2.*gender"):
        load_corrections(bad)


@pytest.mark.parametrize("content, reason", [
    (b"\xff\xfe\x00 binary", "not UTF-8 text"),
    (b"", "empty"),
    (b"foo,bar\n1,2\n", "no 'ImageID' or 'ans' column"),
    (b"ImageID,ans,person\nx.jpg,99,1\n", "1 row(s) hold no class 0-17 in 'ans' (e.g. '99' on line 2)"),
    (b"ImageID,ans\nx.jpg,abc\ny.jpg,3\n", "(e.g. 'abc' on line 2)"),
])
def test_a_damaged_hidden_truth_is_reported_and_the_data_still_used(demo_root, tmp_path, capsys, content, reason):
    """eval/labels.csv only scores the demo: damaged, it must not stop a scan, a run or a prediction."""
    root = tmp_path / "d"
    shutil.copytree(demo_root, root, ignore=shutil.ignore_patterns(".maskcls-cache"))
    (root / "eval/labels.csv").write_bytes(content)
    idx = index_data(root)
    assert len(idx.train) == 420 and idx.eval["exists"].all() and "label" not in idx.eval.columns
    found = idx.problems.loc[idx.problems["path"] == str(root / "eval/labels.csv"), "reason"].tolist()
    assert len(found) == 1 and reason in found[0] and "get no demo score" in found[0], found
    assert main(["scan", str(root)]) == 0 and reason in capsys.readouterr().out


def test_eval_in_info_order_with_missing_reported(demo_root, tmp_path):
    idx = index_data(demo_root)
    info = (demo_root / "eval/info.csv").read_text().splitlines()[1:]
    assert idx.eval["image_id"].tolist() == [line.split(",")[0] for line in info]
    assert idx.eval["exists"].all() and idx.eval["label"].notna().all()


@pytest.mark.parametrize("make,expect", [
    (lambda p: p / "nope", "does not exist"),
    (lambda p: p, "not in the competition layout"),
    (lambda p: (p / "train/images").mkdir(parents=True) or p, "no person folders"),
])
def test_unusable_roots_say_why(tmp_path, make, expect):
    with pytest.raises(DataRootError, match=expect):
        index_data(make(tmp_path))


def test_unparsable_folder_and_bad_files_are_reported(tmp_path, demo_root):
    import shutil
    root = tmp_path / "d"
    shutil.copytree(demo_root / "train", root / "train")
    first = sorted((root / "train/images").iterdir())[0]
    shutil.copytree(first, root / "train/images/not_a_person")
    (first / "normal.jpg").write_bytes(b"")
    (first / "notes.txt").write_text("hello")
    idx = index_data(root)
    reasons = dict(zip(idx.skipped["path"].str.split("/train/images/").str[1], idx.skipped["reason"]))
    assert "does not parse" in reasons["not_a_person"]
    assert "0 bytes" in reasons[f"{first.name}/normal.jpg"]
    assert "not an image" in reasons[f"{first.name}/notes.txt"]


def test_scan_cli_json(real_layout, capsys):
    assert main(["scan", str(real_layout), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"people", "images", "class_counts", "eval_images", "skipped", "seconds"} <= set(out)
    assert out["people"] == 2700 and len(out["skipped"]) == 3


def test_scan_cli_wrong_root(tmp_path, capsys):
    assert main(["scan", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_train_csv_row_that_disagrees_with_its_folder_is_named(data):
    """Issue 35 #12: a train.csv row whose gender or age differed from its folder name was not reported."""
    csv = data / "train/train.csv"
    table = pd.read_csv(csv, dtype=str)
    folder = table.loc[0, "path"]
    table.loc[0, ["gender", "age"]] = ["female" if "_male_" in folder else "male", "91"]
    table.to_csv(csv, index=False)
    idx = index_data(data)
    rows = idx.problems[idx.problems["path"] == folder]
    assert len(rows) == 1 and rows["kind"].iloc[0] == "csv"
    assert "train.csv disagrees with the folder name: gender" in rows["reason"].iloc[0]
    assert "age '91' (the folder says" in rows["reason"].iloc[0]
    assert (idx.problems["kind"] == "csv").sum() == 1  # the other rows agree, zero-padded or not
