"""The CPU side of the GPU issue: the model's own limit beside the pipelines in `bench`, photo-like demo images,
and the batched (nvJPEG on CUDA) decoder checked against the Pillow path on this CPU."""
import json
import shutil

import numpy as np
import pytest

from maskcls.cli import main
from maskcls.data.gpudecode import decode_paths
from maskcls.data.imageio import load_preprocessed
from maskcls.data.index import index_data


def test_bench_train_reports_the_models_own_limit(demo_root, tmp_path, capsys):
    assert main(["bench", "train", "--data", str(demo_root), "--size", "64,48", "--batch", "16", "--steps", "3",
                 "--warmup", "1", "--workers", "1", "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["limit_img_per_s"] > 0 and r["fast_to_limit"] == pytest.approx(r["fast_img_per_s"] / r["limit_img_per_s"],
                                                                             abs=2e-3)
    assert 0 < r["fast_to_limit"] <= 1.5 and r["baseline_to_limit"] > 0


def test_bench_infer_reports_the_models_own_limit(demo_root, tmp_path, capsys):
    assert main(["bench", "infer", "--data", str(demo_root), "--size", "64,48", "--batch", "16", "--workers", "1",
                 "--device", "cpu", "--cache-dir", str(tmp_path / "c"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["limit_img_per_s"] > 0 and 0 < r["fast_to_limit"] <= 1.5


@pytest.mark.parametrize("size, crop", [((128, 96), None), ((224, 224), None), ((128, 96), [320, 256])])
def test_batched_decoder_matches_the_pillow_path(demo_root, size, crop):
    paths = index_data(demo_root).train["path"].tolist()[:48]
    batched, failed = decode_paths(paths, size, crop, "cpu")
    pillow = np.stack([load_preprocessed(p, size, crop) for p in paths])
    diff = np.abs(batched.astype(np.int16) - pillow.astype(np.int16))
    assert failed == [] and diff.mean() <= 1.5 and np.percentile(diff, 99) <= 20, (diff.mean(), diff.max())


def test_batched_decoder_falls_back_for_png_and_reports_bad_files(demo_root, tmp_path):
    from PIL import Image
    src = index_data(demo_root).train["path"].tolist()[0]
    png = tmp_path / "a.png"
    Image.open(src).save(png)
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"not really a jpeg" * 10)
    tiny = tmp_path / "c.jpg"
    Image.new("RGB", (4, 4)).save(tiny)
    paths = [src, str(png), str(bad), str(tiny)]
    out, failed = decode_paths(paths, (64, 48), None, "cpu")
    assert np.array_equal(out[1], load_preprocessed(png, (64, 48)))  # PNG: the Pillow path itself
    assert [i for i, _ in failed] == [2, 3]
    assert "cannot decode" in failed[0][1] and "image too small (4x4)" in failed[1][1]


def test_photo_like_demo_images_cost_what_photos_cost(tmp_path):
    assert main(["demo-data", str(tmp_path / "drawn"), "--people", "4", "--eval-people", "0", "--quiet"]) == 0
    assert main(["demo-data", str(tmp_path / "photo"), "--people", "4", "--eval-people", "0", "--photo",
                 "--quiet"]) == 0
    sizes = {kind: np.mean([p.stat().st_size for p in (tmp_path / kind / "train/images").rglob("*.jpg")])
             for kind in ("drawn", "photo")}
    assert sizes["photo"] >= 50_000 and sizes["photo"] >= 3 * sizes["drawn"], sizes  # a 384x512 photo: ~70 KB


def test_bench_cache_checks_the_batched_pixels_on_the_cpu(demo_root, tmp_path, capsys):
    root = tmp_path / "d"
    shutil.copytree(demo_root, root, ignore=shutil.ignore_patterns(".maskcls-cache"))
    assert main(["bench", "cache", "--data", str(root), "--size", "64,48", "--device", "cpu", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["cpu_seconds"] > 0 and r["pixel_mean_abs_diff"] <= 1.5 and "pixel check only" in r["device_decoder"]
