"""Tests of cache."""
import os
import shutil

import numpy as np
import pytest

from maskcls.data.cache import build_cache
from maskcls.data.imageio import load_preprocessed
from maskcls.data.index import index_data


def some_paths(root, n=24):
    return index_data(root).train["path"].tolist()[:n]


def test_cached_image_equals_a_fresh_decode(demo_root, tmp_path):
    paths = some_paths(demo_root)
    cache = build_cache(paths, (128, 96), tmp_path, crop=[320, 256], workers=2)
    assert cache.built and cache.ok.all()
    for i in (0, 7, 23):
        fresh = load_preprocessed(paths[i], (128, 96), [320, 256]).astype(int)
        assert np.abs(cache.array[i].astype(int) - fresh).max() <= 1


def test_a_changed_file_or_size_rebuilds(demo_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_root / "train", data / "train")
    paths = some_paths(data)
    first = build_cache(paths, (64, 48), tmp_path / "c", workers=1)
    again = build_cache(paths, (64, 48), tmp_path / "c", workers=1)
    assert first.built and not again.built and again.key == first.key
    other_size = build_cache(paths, (96, 64), tmp_path / "c", workers=1)
    assert other_size.built and other_size.key != first.key
    shutil.copy(paths[1], paths[0])  # same name, new content
    os.utime(paths[0], ns=(1, 10**18))
    changed = build_cache(paths, (64, 48), tmp_path / "c", workers=1)
    assert changed.built and changed.key != first.key
    assert np.array_equal(changed.array[0], changed.array[1])


def test_cache_build_survives_a_corrupt_image(demo_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_root / "train", data / "train")
    paths = some_paths(data)
    with open(paths[5], "r+b") as f:  # a truncated JPEG: the header is fine, the data is not
        f.truncate(300)
    cache = build_cache(paths, (64, 48), tmp_path / "c", workers=2)
    assert not cache.ok[5] and cache.ok.sum() == len(paths) - 1
    assert cache.problems[0][0] == paths[5] and "cannot decode" in cache.problems[0][1]
    reloaded = build_cache(paths, (64, 48), tmp_path / "c", workers=2)
    assert not reloaded.built and not reloaded.ok[5] and reloaded.problems == cache.problems


def test_a_cache_the_disk_cannot_hold_is_refused_before_writing(tmp_path):
    """Issue 35 #4: image_size [20000, 20000] started a ~500 GB cache inside the data root. The config now bounds
    each side at 1024; the cache build checks its size against the disk's free space first (here 200,000
    1024x1024 images, 600 GB, more than this kind of machine's whole disk)."""
    import errno
    paths = [str(tmp_path / f"{i}.jpg") for i in range(200_000)]
    with pytest.raises(OSError) as e:
        build_cache(paths, (1024, 1024), tmp_path / "c", workers=1)
    assert e.value.errno == errno.ENOSPC and "needs 585.9 GB" in str(e.value) and "GB free" in str(e.value)
    assert list((tmp_path / "c").iterdir()) == []
