"""A run's inputs: the split by person and its loaders, over the decoded-image cache (or the baseline-style PIL
loader), each part cut by its own face-box rule."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from maskcls.data.corrections import corrections_summary
from maskcls.data.splits import prepare_split
from maskcls.train.config import ConfigError, RunConfig
from maskcls.train.dist import Dist
from maskcls.train.engine import TrainingError
from maskcls.train.loaders import CachedLoader, baseline_loader
from maskcls.train.sampling import sample_weights


@dataclass
class Data:
    """The split and its loaders."""

    train_rows: "object"
    val_rows: "object"
    train_loader: "object"
    val_loader: "object"
    eval_people: int = 0  # people in the eval set (its images / 7): the size an unseen-set interval simulates
    pace: "object" = None  # the run's steady ETA (maskcls.train.pace.Pace)
    prints: dict | None = None  # the data and split fingerprints it trains on (maskcls.data.fingerprints)

    def __post_init__(self):
        if self.pace is None:
            from maskcls.train.pace import Pace
            self.pace = Pace(len(self.val_rows))


def load_data(cfg: RunConfig, device: torch.device, dist: Dist, say, progress=None, *, stage=None) -> Data:
    """Index and split by person, then the loaders: the decoded-image cache (built once) or PIL workers.
    `stage(text)` gives a (done, total) callback that reports a preparation step to the job's status."""
    spec = cfg.augment_spec()
    train_rows, val_rows, index = prepare_split(cfg.split_spec())
    eval_people = round(len(index.eval) / 7) if index.eval is not None else 0
    say(f"data {index.root}: {len(train_rows)} train / {len(val_rows)} validation images "
        f"({train_rows['person_id'].nunique()} / {val_rows['person_id'].nunique()} people), "
        f"{len(index.skipped)} files skipped"
        + (f"; {train_rows.attrs['borderline_dropped']} borderline-age training images left out"
           if cfg.drop_borderline else ""))
    for path, reason in index.skipped[["path", "reason"]].head(20).itertuples(index=False):
        say(f"skipped {path}: {reason}")
    emptied = train_rows.attrs.get("emptied_classes")
    if emptied:
        say(f"WARNING: drop_borderline={cfg.drop_borderline} leaves {len(emptied)} class(es) with no training image "
            f"({', '.join(map(str, emptied))}): the model cannot learn them; use a smaller drop_borderline")
    corrected = corrections_summary(index.train.attrs.get("corrections"))
    if corrected:
        say(corrected)
    if cfg.batch_size > len(train_rows) // dist.world:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(train_rows)} training images"
                          f"{' per process' if dist.world > 1 else ''}: use a batch of at most "
                          f"{max(1, len(train_rows) // dist.world)}")
    size = tuple(cfg.image_size)
    weights = sample_weights(train_rows["label"].to_numpy(), cfg.sampler) if cfg.sampler != "none" else None
    if cfg.loader != "cache":
        pin = device.type == "cuda"
        return _fingerprinted(index, Data(train_rows, val_rows,
                    baseline_loader(train_rows["path"], train_rows["label"], size, spec=spec, train=True,
                                    batch_size=cfg.batch_size, workers=cfg.workers, weights=weights, seed=cfg.seed,
                                    pin=pin),
                    baseline_loader(val_rows["path"], val_rows["label"], size, spec=spec, train=False,
                                    batch_size=cfg.batch_size * 2, workers=cfg.workers, seed=cfg.seed, pin=pin),
                    eval_people))
    cache = decoded_cache(cfg, train_rows, val_rows, device=device, dist=dist, say=say, progress=progress,
                          stage=stage)
    n_tr = len(train_rows)
    tr_ok, va_ok = np.flatnonzero(cache.ok[:n_tr]), np.flatnonzero(cache.ok[n_tr:])
    check_decoded(cfg, len(tr_ok), len(va_ok), cache.problems)
    train_rows, val_rows = train_rows.iloc[tr_ok].reset_index(drop=True), val_rows.iloc[va_ok].reset_index(drop=True)
    if weights is not None:
        weights = weights[tr_ok]
    cl = cfg.channels_last
    # batch_size is the global batch: each of `world` processes takes its share of it
    return _fingerprinted(index, Data(train_rows, val_rows,
                CachedLoader(cache.array, tr_ok, train_rows["label"].to_numpy(), cfg.batch_size // dist.world,
                             spec=spec, train=True, device=device, weights=weights, seed=cfg.seed, rank=dist.rank,
                             world=dist.world, channels_last=cl),
                CachedLoader(cache.array, n_tr + va_ok, val_rows["label"].to_numpy(), cfg.batch_size * 2, spec=spec,
                             train=False, device=device, channels_last=cl),
                eval_people))


def _fingerprinted(index, data: Data) -> Data:
    """The data's fingerprints as this run sees them: every labelled photo (after corrections) and the validation
    people the run is scored on; the run keeps them, so a later correction does not change what it trained on."""
    from maskcls.data.fingerprints import rows_fingerprint, split_fingerprint
    data.prints = {"data": rows_fingerprint(index.train),
                   "split": split_fingerprint(data.val_rows) if len(data.val_rows) else ""}
    return data


def check_decoded(cfg: RunConfig, n_train: int, n_val: int, problems: list) -> None:
    """Refuse to train on nothing, or to call a run validated when nothing was validated."""
    def first() -> str:
        shown = "; ".join(f"{p}: {r}" for p, r in problems[:3])
        return f" ({len(problems)} skipped: {shown}{' …' if len(problems) > 3 else ''})" if problems else ""
    if n_train == 0:
        raise TrainingError(f"no training images could be decoded{first()}")
    if n_val == 0 and not cfg.full_data:
        raise TrainingError(f"no validation images could be decoded{first()}: a run that is not full_data is scored "
                            f"on its validation people")


def _both(*calls):
    """One progress callback (done, total) feeding the terminal bar and the job's status (either may be off)."""
    calls = [c for c in calls if c]
    if not calls:
        return None
    def call(done, total):
        for c in calls:
            c(done, total)
    return call


def decoded_cache(cfg: RunConfig, train_rows, val_rows, *, device: torch.device, dist: Dist, say, progress=None,
                  stage=None):
    """The decoded-image cache over training then validation images, each part cut by its own box rule (the
    run's recipe: RunConfig.preprocess); the main process builds it, the others load it."""
    recipe = cfg.preprocess()
    parts = [(list(train_rows["path"]), "train"), (list(val_rows["path"]), "held_out")]
    detect_on = device if device.type == "cuda" else "cpu"
    if dist.main:
        say(f"decoded-image cache: {len(train_rows) + len(val_rows)} images at {cfg.image_size[0]}x"
            f"{cfg.image_size[1]}")
        bar = _both(progress.count("decoding images", "img") if progress is not None else None,
                    stage and stage("decoding photos for the image cache"))
        faces = _both(progress.count("finding faces", "img") if progress is not None and cfg.face_crop else None,
                      stage and cfg.face_crop and stage("finding faces (MTCNN, once per photo)"))
        cache, cover = recipe.cache(parts, device=detect_on, workers=cfg.workers or None, progress=bar,
                                    box_progress=faces, decode_device=device if device.type == "cuda" else None)
        for role, counts in cover.items():
            say(f"face crop ({'training' if role == 'train' else 'validation'}): "
                + ", ".join(f"{n} {k}" for k, n in counts.items()))
        say(f"cache {'built' if cache.built else 'loaded'} in {cache.seconds:.1f}s; "
            f"{len(cache.problems)} images could not be decoded")
        for p, r in cache.problems[:20]:
            say(f"skipped {p}: {r}")
    if dist.world > 1:
        torch.distributed.barrier()
        if not dist.main:
            cache, _ = recipe.cache(parts, device=detect_on, workers=1)
    return cache
