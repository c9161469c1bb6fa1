"""Defaults in one place: where runs, caches and demo data live, and the environment variables that move them.

| variable | what it sets | default |
| --- | --- | --- |
| MASKCLS_RUNS | the runs root (CLI and studio alike) | the checkout's checkpoints/ when run from one, else ./checkpoints |
| MASKCLS_CACHE | generated demo data and other caches | ~/.cache/maskcls |
| MASKCLS_DATA | the studio's data root | "" (the generated demo) |
| MASKCLS_THREADS | CPU threads a training job may use (set by the job runner: its share of the cores, never more than the value the runner itself was given) | all cores |
| MASKCLS_NVJPEG | 1: on CUDA, decode JPEGs on the GPU (nvJPEG) for the cache and eval prediction | unset: Pillow workers |
| MASKCLS_PREFETCH | 1: on CUDA, the cached loader prepares the next batch on a side stream | unset: off |
| MASKCLS_CUDNN_BENCHMARK | 0: no cuDNN autotuning in prediction passes | unset: on |
| MASKCLS_EVAL_BATCH | images per prediction batch | 512 on CUDA, 256 on the CPU |
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


def check_runs_root(path: str) -> str:
    """A runs root must be a folder (or not exist yet): a file there would fail every write with 'File exists'."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"runs root {path!r} is a file, expected a folder to hold run folders (or a path that does not "
                         f"exist yet)")
    return path


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


def nvjpeg_preferred() -> bool:
    """GPU JPEG decoding only when asked ($MASKCLS_NVJPEG=1): on an H100 and an H200 with 16 cores, Pillow worker
    processes decoded the 384x512 images 2.3x faster than torchvision's batched nvJPEG (docs/performance.md)."""
    return os.environ.get("MASKCLS_NVJPEG", "") == "1"


def prefetch_enabled() -> bool:
    """On CUDA, the cached loader may prepare the next batch on a side stream ($MASKCLS_PREFETCH=1); off until a
    GPU run measures it against the plain loader in training (benchmarks/gpu_profile.py does)."""
    return os.environ.get("MASKCLS_PREFETCH", "") == "1"


def cudnn_autotune_eval() -> bool:
    """cuDNN autotuning for prediction passes; MASKCLS_CUDNN_BENCHMARK=0 turns it off (each new batch shape
    costs a tuning run)."""
    return os.environ.get("MASKCLS_CUDNN_BENCHMARK", "1") != "0"


def cpu_threads() -> int:
    """Threads a CPU job may use: the job runner's share ($MASKCLS_THREADS), else every core."""
    return int(os.environ.get("MASKCLS_THREADS", 0)) or (os.cpu_count() or 1)


TEAM_ENV, MEMBER_ENV = "MASKCLS_TEAM", "MASKCLS_MEMBER"  # the team store's address and your name on the team


def team_settings(uri: str | None = None, member: str | None = None) -> tuple[str, str]:
    """(team store address, member name) from the arguments or the environment; either missing is named."""
    from maskcls.common.fileio import check_name
    uri, member = uri or os.environ.get(TEAM_ENV, ""), member or os.environ.get(MEMBER_ENV, "")
    if not uri:
        raise ValueError(f"no team store: give --team http://HOST:PORT or set {TEAM_ENV} (the MLflow server one "
                         f"member starts with `maskcls team serve`)")
    if not member:
        raise ValueError(f"who are you on the team? give --member NAME or set {MEMBER_ENV}")
    return uri, check_name(member, "member name")


def own_member_name() -> str:
    """The name this machine's user has on the team (MASKCLS_MEMBER, else the team store's login), for the rows of
    their own runs; "this server" when neither is set."""
    from maskcls.common.fileio import check_name
    for value in (os.environ.get(MEMBER_ENV, ""), os.environ.get("MLFLOW_TRACKING_USERNAME", "")):
        try:
            return check_name(value, "member name")
        except ValueError:
            continue
    return "this server"


_MLFLOW_TIMEOUT_OURS: str | None = None  # the MLFLOW_HTTP_REQUEST_TIMEOUT this process set, not the user


def mlflow_requests(timeout_s: float) -> None:
    """MLflow's HTTP requests from here on: one retry and `timeout_s` a request, unless the user set
    MLFLOW_HTTP_REQUEST_TIMEOUT. A value set here for another caller is not the user's: a run's tracker (10 s: a
    server gone must not stall training) leaves the team store's push after it its own minute."""
    global _MLFLOW_TIMEOUT_OURS
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    current = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
    if current is None or current == _MLFLOW_TIMEOUT_OURS:
        _MLFLOW_TIMEOUT_OURS = os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = f"{timeout_s:g}"


def quiet_mlflow() -> None:
    """Before MLflow is imported: no usage telemetry leaves the machine (the studio sends no usage stats either,
    and a telemetry thread racing a first request broke a push), and the deprecation warnings of MLflow's own
    dependencies stay out of the team commands' error output. A setting the user made is kept."""
    import warnings
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(mlflow|starlette|fastapi)(\..*)?$")
    warnings.filterwarnings("ignore", message=r".*starlette\.middleware\.wsgi.*")
