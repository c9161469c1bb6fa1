"""Tests of gpudecode."""
import numpy as np
import pytest

from maskcls.data.gpudecode import decode_paths
from maskcls.data.imageio import load_preprocessed
from maskcls.data.index import index_data


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
