"""Defaults in one place: where runs, caches and demo data live, and the environment variables that move them.

| variable | what it sets | default |
| --- | --- | --- |
| MASKCLS_RUNS | the runs root (CLI and studio alike) | the checkout's checkpoints/ when run from one, else ./checkpoints |
| MASKCLS_CACHE | generated demo data and other caches | ~/.cache/maskcls |
| MASKCLS_DATA | the studio's data root | "" (the generated demo) |
| MASKCLS_THREADS | CPU threads a training job may use (set by the job runner) | all cores |
| MASKCLS_NO_NVJPEG | 1: decode on the CPU even on a GPU (the cache and eval prediction) | unset: nvJPEG on CUDA |
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_FOLDER = ".maskcls-cache"  # the decoded-image cache, inside the data root unless a run says otherwise


def default_runs_root() -> str:
    """$MASKCLS_RUNS, else the checkout's checkpoints/ (one root whether the CLI or the studio starts a run)."""
    env = os.environ.get("MASKCLS_RUNS", "").strip()
    if env:
        return env
    repo_runs = REPO / "checkpoints"
    return str(repo_runs) if repo_runs.is_dir() else os.path.abspath("checkpoints")


def default_data_root() -> str:
    return os.environ.get("MASKCLS_DATA", "")


def cache_home() -> Path:
    """Where generated demo data and other caches live (outside git): $MASKCLS_CACHE or ~/.cache/maskcls."""
    return Path(os.environ.get("MASKCLS_CACHE", Path.home() / ".cache" / "maskcls"))


def default_cache_dir(data_root, cache_dir=None) -> Path:
    """The decoded-image cache folder: `cache_dir` when given, else <data root>/.maskcls-cache.

    Accepts a RunConfig too (its data_root and cache_dir)."""
    if hasattr(data_root, "data_root"):
        data_root, cache_dir = data_root.data_root, data_root.cache_dir
    return Path(cache_dir) if cache_dir else Path(data_root) / CACHE_FOLDER


def nvjpeg_allowed() -> bool:
    """GPU JPEG decoding may be used on CUDA unless $MASKCLS_NO_NVJPEG=1."""
    return os.environ.get("MASKCLS_NO_NVJPEG", "") != "1"


def cpu_threads() -> int:
    """Threads a CPU job may use: the job runner's share ($MASKCLS_THREADS), else every core."""
    return int(os.environ.get("MASKCLS_THREADS", 0)) or (os.cpu_count() or 1)
