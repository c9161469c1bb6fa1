"""Bad input: each case gives a clear message naming the file and the problem, and the rest goes on."""
import io
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from maskcls.data.cache import build_cache
from maskcls.data.index import DataRootError, index_data
from maskcls.infer.predict import build_model, eval_paths
from maskcls.train.config import RunConfig
from maskcls.data.imageio import ImageError, load_rgb
from maskcls.models.backbones import create_model
from maskcls.train.rundir import CheckpointError, load_checkpoint, save_checkpoint


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
    from maskcls.train.rundir import RunDir
    run = RunDir(data, "r")
    run.path.mkdir()
    run.log("skipped " + os.fsdecode(odd))


def test_truncated_jpeg_is_reported_by_the_cache_and_training_goes_on(data, tmp_path):
    paths = index_data(data).train["path"].tolist()[:10]
    with open(paths[2], "r+b") as f:
        f.truncate(200)
    cache = build_cache(paths, (64, 48), tmp_path / "c", workers=1)
    assert cache.ok.sum() == 9 and cache.problems[0][0] == paths[2] and "cannot decode" in cache.problems[0][1]


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


def test_alpha_grey_cmyk_and_exif_rotation_load_as_upright_rgb(tmp_path):
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    assert load_rgb(_save(rgba, tmp_path / "a.png")).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    grey = load_rgb(_save(Image.new("L", (40, 30), 90), tmp_path / "g.jpg"))
    assert grey.mode == "RGB" and abs(grey.getpixel((5, 5))[0] - 90) <= 2
    cmyk = load_rgb(_save(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), tmp_path / "c.jpg"))
    r, g, b = cmyk.getpixel((5, 5))
    assert cmyk.mode == "RGB" and r > 200 and g < 60 and b < 60
    tall = Image.new("RGB", (40, 30), (0, 0, 0))
    tall.paste((255, 255, 255), (0, 0, 20, 30))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    upright = load_rgb(_save(tall, tmp_path / "r.jpg", exif=exif))
    assert upright.size == (30, 40)  # width and height swapped: the tag was honoured
    assert np.asarray(upright)[2, 15].mean() > 200 and np.asarray(upright)[-3, 15].mean() < 60


def test_very_large_image_is_refused_by_name(tmp_path, monkeypatch):
    import maskcls.data.imageio
    monkeypatch.setattr(maskcls.data.imageio, "MAX_PIXELS", 1000)
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "big.jpg")
    with pytest.raises(ImageError, match="big.jpg: image too large"):
        load_rgb(path)


def test_eval_info_missing_or_naming_absent_images(data):
    (data / "eval/info.csv").unlink()
    idx = index_data(data)
    assert idx.eval is None and "info.csv is missing" in idx.problems["reason"].str.cat()
    with pytest.raises(ValueError, match="info.csv is missing"):
        eval_paths(data)


# -- models ---------------------------------------------------------------------------------------------------
def checkpoint_of(tmp_path, model="test_resnet", head="single"):
    cfg = RunConfig(model=model, head=head, pretrained=False)
    net, _ = create_model(model, head=head)
    path = tmp_path / f"{model}-{head}.pt"
    save_checkpoint(path, {"model": net.state_dict(), "config": cfg.to_dict(), "classes": [], "epoch": 1})
    return path


def test_checkpoint_of_another_architecture_or_class_count(tmp_path):
    ckpt = load_checkpoint(checkpoint_of(tmp_path, "test_resnet"))
    with pytest.raises(CheckpointError, match="does not fit model resnet10t"):
        build_model(ckpt, RunConfig(model="resnet10t"), "x.pt")
    multi = load_checkpoint(checkpoint_of(tmp_path, "test_resnet", "multi"))
    with pytest.raises(CheckpointError, match=r"does not fit model test_resnet \(single head\)"):
        build_model(multi, RunConfig(model="test_resnet", head="single"), "x.pt")


def test_truncated_checkpoint_is_named(tmp_path):
    path = checkpoint_of(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or incomplete"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/maskcls-pwned",))


def test_checkpoint_carrying_code_is_refused_and_nothing_runs(tmp_path):
    if os.path.exists("/tmp/maskcls-pwned"):
        os.unlink("/tmp/maskcls-pwned")
    path = tmp_path / "evil.pt"
    torch.save({"format": "maskcls-checkpoint-1", "model": {}, "x": Payload()}, path, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not os.path.exists("/tmp/maskcls-pwned")
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError):
        load_checkpoint(plain)
    assert not os.path.exists("/tmp/maskcls-pwned")
