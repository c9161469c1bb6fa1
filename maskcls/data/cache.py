"""Decoded-image cache: each image decoded, cropped and resized once, stored as uint8 in a memory-mapped file.

The key hashes every file's path, size and mtime with the size and crop, so a changed dataset or
resolution builds a new cache instead of serving stale pixels. Built in parallel; corrupt images are
skipped and reported, never fatal.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskcls.common.fileio import atomic_path, read_json, write_json
from maskcls.data.gpudecode import gpu_decode_available
from maskcls.data.imageio import ImageError, load_preprocessed

VERSION = 1


@dataclass
class ImageCache:
    """A (N, H, W, 3) uint8 array over `paths`; `ok[i]` is False where image i could not be decoded."""

    paths: list[str]
    array: np.ndarray
    ok: np.ndarray
    problems: list[tuple[str, str]]
    key: str
    seconds: float
    built: bool  # False when loaded from disk


def cache_key(paths: list[str], size: tuple[int, int], crop: list | None, boxes: np.ndarray | None = None,
              background: bool = False) -> str:
    h = hashlib.sha256(f"v{VERSION}|{size}|{crop}{'|no-background' if background else ''}".encode())
    if boxes is not None:  # per-image crop boxes (the face crop): other boxes, other pixels
        h.update(b"boxes" + np.ascontiguousarray(boxes, dtype=np.int32).tobytes())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:24]


HEADROOM = 512 * 2**20  # left free beside a new cache: the runs' checkpoints and logs still need to be written


def check_room(folder: Path, shape: tuple) -> None:
    """Refuse, before a byte is written, a cache the disk cannot hold (a sparse memmap would fail halfway, or fill
    the disk that the data root and the runs share)."""
    need = int(np.prod(shape, dtype=np.int64))
    free = shutil.disk_usage(folder).free
    if need + HEADROOM > free:
        raise OSError(errno.ENOSPC, f"the decoded-image cache of {shape[0]:,} images at {shape[1]}x{shape[2]} needs "
                                    f"{need / 2**30:.1f} GB, but {folder} has {free / 2**30:.1f} GB free (keeping "
                                    f"{HEADROOM // 2**20} MB spare): free space, set cache_dir to a larger disk, or "
                                    f"choose a smaller image_size")


def _decode_chunk(args) -> list[tuple[int, str]]:
    """Worker: decode rows [start, stop) into the shared memmap; return (row, reason) for failures."""
    data_file, shape, paths, start, size, crop, boxes, background = args
    arr = np.memmap(data_file, dtype=np.uint8, mode="r+", shape=shape)
    failed = []
    for i, p in enumerate(paths):
        try:
            arr[start + i] = load_preprocessed(p, size, crop, None if boxes is None else tuple(boxes[i]), background)
        except ImageError as e:
            failed.append((start + i, e.reason))
        except Exception as e:  # a decoder bug must not kill the whole build
            failed.append((start + i, f"cannot decode image ({type(e).__name__}: {e})"))
    arr.flush()
    return failed


def _decode_on_device(tmp, shape, paths, size, crop, *, device, progress, batch: int = 256) -> list[tuple[int, str]]:
    """The build's decode step on a GPU: batches of JPEGs through nvJPEG into the memmap."""
    from maskcls.data.gpudecode import decode_paths
    arr = np.memmap(tmp, dtype=np.uint8, mode="r+", shape=shape)
    failed: list[tuple[int, str]] = []
    for start in range(0, len(paths), batch):
        _, bad = decode_paths(paths[start:start + batch], size, crop, device, out=arr, start=start)
        failed += bad
        if progress:
            progress(min(start + batch, len(paths)), len(paths))
    arr.flush()
    return failed


def build_cache(paths: list[str], size: tuple[int, int], cache_dir: str | os.PathLike, crop: list | None = None, *,
                workers: int | None = None, progress=None, device=None, boxes: np.ndarray | None = None,
                background: bool = False) -> ImageCache:
    """Load the cache for (paths, size, crop) from `cache_dir`, building it first if needed.

    `progress(done, total)` is called as chunks finish. With a CUDA `device`, JPEGs are decoded on it in
    batches (nvJPEG) and PNGs on the CPU; otherwise worker processes decode with Pillow.
    """
    t0 = time.perf_counter()
    size = (int(size[0]), int(size[1]))
    paths = [str(p) for p in paths]
    boxes = None if boxes is None else np.asarray(boxes, dtype=np.int32)
    key = cache_key(paths, size, crop, boxes, background)
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    data_file, meta_file = folder / f"{key}.u8", folder / f"{key}.json"
    shape = (len(paths), size[0], size[1], 3)
    if data_file.exists() and meta_file.exists():
        meta = read_json(meta_file)
        if meta.get("shape") == list(shape):
            arr = np.memmap(data_file, dtype=np.uint8, mode="r", shape=shape)
            ok = np.ones(len(paths), bool)
            ok[meta["failed_rows"]] = False
            problems = [(paths[i], r) for i, r in zip(meta["failed_rows"], meta["failed_reasons"])]
            if progress:
                progress(len(paths), len(paths))
            return ImageCache(paths, arr, ok, problems, key, time.perf_counter() - t0, built=False)
    check_room(folder, shape)
    failed: list[tuple[int, str]] = []
    with atomic_path(data_file) as tmp:
        np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape).flush() if len(paths) else tmp.write_bytes(b"")
        step = max(16, min(256, len(paths) // (4 * (workers or os.cpu_count() or 1)) + 1))
        jobs = [(str(tmp), shape, paths[i:i + step], i, size, crop, None if boxes is None else boxes[i:i + step],
                 background) for i in range(0, len(paths), step)]
        workers = workers or min(os.cpu_count() or 1, 16)
        done = 0
        if gpu_decode_available(device) and boxes is None and not background:
            failed = _decode_on_device(tmp, shape, paths, size, crop, device=device, progress=progress)
        elif workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(workers) as pool:
                for job, res in zip(jobs, pool.map(_decode_chunk, jobs)):
                    failed += res
                    done += len(job[2])
                    if progress:
                        progress(done, len(paths))
        else:
            for job in jobs:
                failed += _decode_chunk(job)
                done += len(job[2])
                if progress:
                    progress(done, len(paths))
    failed.sort()
    write_json(meta_file, {"shape": list(shape), "size": list(size), "crop": crop, "count": len(paths),
                           "failed_rows": [i for i, _ in failed], "failed_reasons": [r for _, r in failed]})
    arr = np.memmap(data_file, dtype=np.uint8, mode="r", shape=shape) if len(paths) else np.zeros(shape, np.uint8)
    ok = np.ones(len(paths), bool)
    ok[[i for i, _ in failed]] = False
    return ImageCache(paths, arr, ok, [(paths[i], r) for i, r in failed], key, time.perf_counter() - t0, built=True)
