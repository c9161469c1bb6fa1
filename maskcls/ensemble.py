"""Ensembles of checkpoints: weight soups, soft and hard voting, flip TTA, and the submission CSV."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .cache import build_cache
from .config import RunConfig
from .engine import predict
from .fileio import atomic_path
from .loaders import CachedLoader
from .metrics import macro_f1
from .models import create_model
from .rundir import CheckpointError, RunDir, load_checkpoint, run_folder_path

METHODS = ("soft", "hard", "soup", "greedy-soup")
METHOD_HELP = {
    "soft": "mean of the members' probabilities (weights optional)",
    "hard": "majority of the members' votes; ties go to the highest mean probability",
    "soup": "average the weights of checkpoints of one architecture, then predict once",
    "greedy-soup": "soup that adds checkpoints best-first, keeping one only if validation macro F1 does not drop",
}


@dataclass
class Member:
    run: str
    checkpoint: str = "best.pt"
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "Member":
        """'RUN', 'RUN:CKPT' or 'RUN:CKPT:WEIGHT'; RUN is a run name or a run folder path."""
        parts = text.split(":")
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"member {text!r}: expected RUN[:CHECKPOINT[:WEIGHT]]")
        checkpoint = parts[1] if len(parts) > 1 and parts[1] else "best.pt"
        if not checkpoint.endswith(".pt"):
            raise ValueError(f"member {text!r}: {checkpoint!r} is not a checkpoint; expected best.pt, last.pt or "
                             f"epoch_NNN.pt")
        weight = 1.0
        if len(parts) > 2 and parts[2]:
            try:
                weight = float(parts[2])
            except ValueError:
                raise ValueError(f"member {text!r}: weight {parts[2]!r} is not a number") from None
            if not (np.isfinite(weight) and weight > 0):
                raise ValueError(f"member {text!r}: weight must be a finite number above 0, got {parts[2]!r}")
        return cls(parts[0], checkpoint, weight)

    def absolute(self) -> str:
        """This member as text, its run folder path made absolute (for a job process in another folder)."""
        path = run_folder_path(".", self.run)
        run = str(path) if path is not None else self.run
        return f"{run}:{self.checkpoint}:{self.weight!r}"

    @property
    def label(self) -> str:
        return f"{self.run}:{self.checkpoint}"


def member_run(runs_root, member: Member) -> RunDir:
    run = RunDir.open(runs_root, member.run)
    if not run.config_path.exists():
        raise ValueError(f"no run named {member.run!r} in {runs_root}")
    return run


def load_member(runs_root, member: Member) -> tuple[dict, RunConfig]:
    ckpt = load_checkpoint(member_run(runs_root, member).checkpoint(member.checkpoint))
    return ckpt, RunConfig.from_dict(ckpt["config"])


def member_config(runs_root, member: Member) -> RunConfig:
    """A member's run config from its config.json: no checkpoint is read when only the config is needed."""
    return RunConfig.from_dict(member_run(runs_root, member).read_config())


def build_model(ckpt: dict, cfg: RunConfig, source: str = "checkpoint") -> torch.nn.Module:
    """The checkpoint's own architecture with its weights; a mismatch is explained, not dumped."""
    model, _ = create_model(cfg.model, pretrained=False, head=cfg.head)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{source} does not fit model {cfg.model} ({cfg.head} head): "
                              f"{str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}") from None
    return model.eval()


def check_one_architecture(configs: list[RunConfig], labels: list[str]) -> None:
    """Weights can only be averaged within one architecture; say which member breaks that."""
    first = configs[0]
    for cfg, label in zip(configs[1:], labels[1:]):
        if (cfg.model, cfg.head) != (first.model, first.head):
            raise ValueError(f"cannot average weights of different architectures: {labels[0]} is {first.model} "
                             f"({first.head} head) but {label} is {cfg.model} ({cfg.head} head); use soft or hard voting")


def soup_state(states: list[dict], labels: list[str], configs: list[RunConfig],
               weights: list[float] | None = None) -> dict:
    """Average checkpoints of one architecture (uniform or weighted). Mixing architectures is refused."""
    check_one_architecture(configs, labels)
    w = np.asarray(weights if weights is not None else [1.0] * len(states), dtype=np.float64)
    w = w / w.sum()
    out = {}
    for key, ref in states[0].items():
        if ref.is_floating_point():
            out[key] = sum(float(wi) * s[key].float() for wi, s in zip(w, states)).to(ref.dtype)
        else:
            out[key] = ref.clone()  # counters such as num_batches_tracked
    return out


def soft_vote(probs: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    w = np.asarray(weights if weights is not None else [1.0] * len(probs), dtype=np.float64)
    return np.tensordot(w / w.sum(), np.stack(probs), axes=1).astype(np.float32)


def hard_vote(probs: list[np.ndarray]) -> np.ndarray:
    """Majority of the members' argmax; ties go to the tied class with the highest mean probability."""
    stacked = np.stack(probs)  # (M, N, C)
    votes = np.zeros(stacked.shape[1:], dtype=np.float64)
    np.add.at(votes, (np.arange(stacked.shape[1])[None, :].repeat(len(probs), 0), stacked.argmax(2)), 1.0)
    mean = stacked.mean(0)
    top = votes == votes.max(1, keepdims=True)
    return np.where(top, mean, -1.0).argmax(1)


class EvalInputs:
    """Decoded, device-resident inputs for a list of images, built once per input form and shared by members.

    `progress(fraction, text)` hears about decoding; `decode_seconds` says how long it took.
    """

    def __init__(self, paths: list[str], device: torch.device, cache_dir, batch_size: int | None = None,
                 progress=None):
        self.paths, self.device, self.cache_dir = paths, device, cache_dir
        self.batch_size = batch_size or (512 if device.type == "cuda" else 256)
        self.progress = progress
        self.decode_seconds = 0.0
        self._loaders: dict = {}
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels

    def loader(self, cfg: RunConfig) -> CachedLoader:
        spec = cfg.augment_spec()
        key = (tuple(cfg.image_size), str(spec.crop), spec.to_json(), cfg.channels_last)
        if key not in self._loaders:
            t0 = time.perf_counter()
            report = (lambda d, n: self.progress(d / max(n, 1), f"decoding images {d}/{n}")) if self.progress else None
            cache = build_cache(self.paths, tuple(cfg.image_size), self.cache_dir, spec.crop, progress=report)
            if cache.problems:
                raise ValueError(f"{len(cache.problems)} image(s) could not be decoded, e.g. "
                                 f"{cache.problems[0][0]}: {cache.problems[0][1]}")
            n = len(self.paths)
            self._loaders[key] = CachedLoader(cache.array, np.arange(n), np.zeros(n), self.batch_size, spec, False,
                                              self.device, channels_last=cfg.channels_last)
            self.decode_seconds += time.perf_counter() - t0
        return self._loaders[key]


def predict_paths(model: torch.nn.Module, cfg: RunConfig, inputs: EvalInputs, tta: bool = False) -> np.ndarray:
    """(N, 18) probabilities of `model` for the images of `inputs`, at the model's own input size."""
    loader = inputs.loader(cfg)
    model = model.to(inputs.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    probs, rows = predict(model, loader, inputs.device, cfg.amp, tta_flip=tta)
    out = np.zeros_like(probs)
    out[rows] = probs
    return out


def _member_progress(progress, i: int, n: int):
    """Map one member's decode progress into the ensemble's overall fraction."""
    if progress is None:
        return None
    return lambda f, text: progress((i + 0.5 * f) / n, f"member {i + 1}/{n}: {text}")


def member_probabilities(runs_root, members: list[Member], paths: list[str] | EvalInputs, device: torch.device,
                         cache_dir, tta: bool = False, progress=None, tuned: bool = False) -> list[np.ndarray]:
    """Each member's (N, 18) probabilities; `tuned` applies a run's saved macro-F1 class biases.

    `progress(fraction, text)` is told where the whole pass stands.
    """
    from .evaluation import apply_bias, load_bias
    if tuned:
        untuned = [m.run for m in members if load_bias(member_run(runs_root, m).root, member_run(runs_root, m).name)
                   is None]
        if untuned:
            raise ValueError(f"--tuned: run(s) {', '.join(sorted(set(untuned)))} have no tuned class biases; fit them "
                             f"first with `maskcls evaluate RUN --tune` (or the Evaluate page), or leave --tuned off")
    inputs = paths if isinstance(paths, EvalInputs) else EvalInputs(paths, device, cache_dir)
    out = []
    for i, m in enumerate(members):
        inputs.progress = _member_progress(progress, i, len(members))
        ckpt, cfg = load_member(runs_root, m)
        if progress:
            progress(i / len(members), f"member {i + 1}/{len(members)}: {m.label}")
        p = predict_paths(build_model(ckpt, cfg, m.label), cfg, inputs, tta)
        run = member_run(runs_root, m)
        bias = load_bias(run.root, run.name) if tuned else None
        out.append(apply_bias(p, bias) if bias is not None else p)
        if progress:
            progress((i + 1) / len(members), f"member {i + 1}/{len(members)} done")
    return out


def ensemble_probabilities(runs_root, members: list[Member], method: str, paths: list[str] | EvalInputs,
                           device: torch.device, cache_dir, tta: bool = False, progress=None,
                           tuned: bool = False) -> np.ndarray:
    """The ensemble's (N, 18) probabilities (for hard voting: one-hot of the vote).

    greedy-soup first picks its members on the members' shared validation split.
    """
    if method not in METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; valid: {', '.join(METHODS)}")
    if not members:
        raise ValueError("an ensemble needs at least one member")
    inputs = paths if isinstance(paths, EvalInputs) else EvalInputs(paths, device, cache_dir)
    if method == "greedy-soup":
        members = greedy_members(runs_root, members, device, cache_dir, tta)[0]
        method = "soup"
    if method == "soup":
        loaded = [load_member(runs_root, m) for m in members]
        cfgs = [c for _, c in loaded]
        state = soup_state([c["model"] for c, _ in loaded], [m.label for m in members], cfgs,
                           [m.weight for m in members])
        inputs.progress = _member_progress(progress, 0, 1)
        out = predict_paths(build_model({"model": state}, cfgs[0], "soup"), cfgs[0], inputs, tta)
        if progress:
            progress(1.0, f"soup of {len(members)} checkpoint(s) done")
        return out
    probs = member_probabilities(runs_root, members, inputs, device, cache_dir, tta, progress, tuned)
    if method == "soft":
        return soft_vote(probs, [m.weight for m in members])
    return np.eye(18, dtype=np.float32)[hard_vote(probs)]


def greedy_soup(runs_root, candidates: list[Member], paths: list[str] | EvalInputs, labels: np.ndarray, device, cache_dir,
                tta: bool = False, progress=None, alone_probs: list[np.ndarray] | None = None
                ) -> tuple[list[Member], float, pd.DataFrame]:
    """Add checkpoints best-first; keep one only if validation macro F1 does not drop.

    Each checkpoint is read once. `alone_probs` (each candidate's own validation probabilities, when the
    caller has them) saves scoring the candidates one by one again. Returns the kept members, the soup's
    macro F1 and one row per candidate saying what happened to it.
    """
    if not candidates:
        raise ValueError("a greedy soup needs at least one candidate checkpoint")
    loaded = {m.label: load_member(runs_root, m) for m in candidates}
    check_one_architecture([loaded[m.label][1] for m in candidates], [m.label for m in candidates])
    labels = np.asarray(labels)
    inputs = paths if isinstance(paths, EvalInputs) else EvalInputs(paths, device, cache_dir)

    def soup_f1(members: list[Member]) -> float:
        cfgs = [loaded[m.label][1] for m in members]
        state = soup_state([loaded[m.label][0]["model"] for m in members], [m.label for m in members], cfgs,
                           [m.weight for m in members])
        p = predict_paths(build_model({"model": state}, cfgs[0], "soup"), cfgs[0], inputs, tta)
        return float(macro_f1(labels, p.argmax(1)))
    total = 2 * len(candidates) - 1
    alone = {}
    for i, m in enumerate(candidates):
        alone[m.label] = (float(macro_f1(labels, alone_probs[i].argmax(1))) if alone_probs is not None
                          else soup_f1([m]))
        if progress:
            progress((i + 1) / total, f"scored {m.label} alone")
    ranked = sorted(candidates, key=lambda m: -alone[m.label])
    chosen, best = [ranked[0]], alone[ranked[0].label]
    steps = [{"checkpoint": ranked[0].label, "alone_f1": best, "soup_f1": best, "kept": True}]
    for j, m in enumerate(ranked[1:]):
        f1 = soup_f1(chosen + [m])
        kept = f1 >= best
        steps.append({"checkpoint": m.label, "alone_f1": alone[m.label], "soup_f1": f1, "kept": kept})
        if kept:
            chosen, best = chosen + [m], f1
        if progress:
            progress((len(candidates) + j + 1) / total, f"tried adding {m.label}")
    return chosen, best, pd.DataFrame(steps)


def greedy_members(runs_root, candidates: list[Member], device, cache_dir, tta: bool = False,
                   progress=None) -> tuple[list[Member], float, pd.DataFrame, list[str]]:
    """Greedy soup selection on the candidates' shared validation split (notes flag other splits)."""
    val_rows, notes = shared_validation(runs_root, candidates)
    chosen, best, steps = greedy_soup(runs_root, candidates, val_rows["path"].tolist(), val_rows["label"].to_numpy(),
                                      device, cache_dir, tta, progress)
    return chosen, best, steps, notes


def eval_paths(data_root) -> tuple[pd.DataFrame, list[str]]:
    """eval/info.csv in its order with image paths; a missing image is an error that names it."""
    from .dataindex import scan_eval
    problems: list = []
    table = scan_eval(Path(data_root), problems)
    if table is None:
        why = problems[0][2] if problems else "eval/info.csv not found"
        raise ValueError(f"cannot predict the eval set of {data_root}: {why}")
    missing = table.loc[~table["exists"], "image_id"].tolist()
    if missing:
        raise ValueError(f"{len(missing)} eval image(s) named in eval/info.csv are missing from eval/images: "
                         f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
    return table, table["path"].tolist()


def check_output(out: str | os.PathLike) -> Path:
    """Refuse, before any work, an output path that is a folder or sits in a folder that cannot be written."""
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; expected a file name such as {str(out / 'submission.csv')!r}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--out {str(out)!r}: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(out)!r}: the folder {str(parent)!r} is not writable")
    return out


def write_submission(out: str | os.PathLike, image_ids: list[str], probs: np.ndarray) -> Path:
    """`ImageID,ans` in info.csv order; the probabilities go beside it as <out>.probs.csv for blending.

    The two files are a pair: both are written to temp files first and replaced only when both are whole, so
    a failure (a full disk) leaves the previous pair, never a new CSV beside old probabilities.
    """
    if probs.size == 0 and len(image_ids):
        raise ValueError("the ensemble produced no probabilities")
    if not np.isfinite(probs).all():
        raise ValueError(f"the ensemble's probabilities are not finite for {int((~np.isfinite(probs)).any(1).sum())} "
                         f"image(s): nothing was written (check the members' weights and checkpoints)")
    out = Path(out)
    probs_path = out.with_suffix(".probs.csv")
    frame = pd.DataFrame(probs, columns=[f"p{i}" for i in range(18)])
    frame.insert(0, "ImageID", image_ids)
    answers = pd.DataFrame({"ImageID": image_ids, "ans": probs.argmax(1).astype(int)})
    with atomic_path(probs_path) as tmp_probs, atomic_path(out) as tmp_csv:
        frame.to_csv(tmp_probs, index=False)
        answers.to_csv(tmp_csv, index=False)
    return probs_path


def demo_score(table: pd.DataFrame, probs: np.ndarray) -> dict | None:
    """Score against the demo's hidden labels (eval/labels.csv), when the data has them."""
    if "label" not in table.columns or table["label"].isna().any():
        return None
    y = table["label"].astype(int).to_numpy()
    return {"macro_f1": macro_f1(y, probs.argmax(1)), "accuracy": float((probs.argmax(1) == y).mean())}


SPLIT_KEYS = ("data_root", "val_ratio", "split_seed", "fold", "n_folds", "corrections", "age_lower", "age_upper")


def shared_validation(runs_root, members: list[Member]) -> tuple[pd.DataFrame, list[str]]:
    """The validation rows of the first member's split, and a note for each member trained on another split."""
    from .trainer import prepare_split
    cfgs = [member_config(runs_root, m) for m in members]
    ref = {k: getattr(cfgs[0], k) for k in SPLIT_KEYS}
    notes = []
    for m, c in zip(members[1:], cfgs[1:]):
        diff = [k for k in SPLIT_KEYS if getattr(c, k) != ref[k]]
        if diff:
            notes.append(f"{m.label} was trained on another split ({', '.join(diff)} differ): its validation score "
                         f"may include images it trained on")
    _, val_rows, _ = prepare_split(cfgs[0])
    return val_rows, notes


def score_members(runs_root, members: list[Member], method: str, device, cache_dir, tta: bool = False,
                  progress=None) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """One table: every member and the ensemble on the shared validation split (macro F1, accuracy)."""
    if method not in METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; valid: {', '.join(METHODS)}")
    val_rows, notes = shared_validation(runs_root, members)
    y = val_rows["label"].to_numpy()
    inputs = EvalInputs(val_rows["path"].tolist(), device, cache_dir)
    probs = member_probabilities(runs_root, members, inputs, device, cache_dir, tta, progress)
    rows = []
    for m, p in zip(members, probs):
        rows.append({"member": m.label, "model": member_config(runs_root, m).model, "macro_f1": macro_f1(y, p.argmax(1)),
                     "accuracy": float((p.argmax(1) == y).mean())})
    name = method
    if method == "greedy-soup":
        chosen, _, _ = greedy_soup(runs_root, members, inputs, y, device, cache_dir, tta, alone_probs=probs)
        ens = ensemble_probabilities(runs_root, chosen, "soup", inputs, device, cache_dir, tta)
        name = f"greedy-soup of {len(chosen)}/{len(members)}: {', '.join(m.label for m in chosen)}"
        notes = notes + ["the greedy soup chose its checkpoints on this validation split, so its score here is "
                         "optimistic"]
    elif method == "soup":
        ens = ensemble_probabilities(runs_root, members, "soup", inputs, device, cache_dir, tta)
    elif method == "hard":
        ens = np.eye(18, dtype=np.float32)[hard_vote(probs)]
    else:
        ens = soft_vote(probs, [m.weight for m in members])
    rows.append({"member": f"ensemble ({name}{', flip TTA' if tta else ''})", "model": "",
                 "macro_f1": macro_f1(y, ens.argmax(1)), "accuracy": float((ens.argmax(1) == y).mean())})
    return pd.DataFrame(rows), notes, ens


def predict_submission(data_root, runs_root, members: list[Member], method: str, out, device: torch.device,
                       tta: bool = False, tuned: bool = False, cache_dir=None, progress=None) -> dict:
    """Predict eval/info.csv with the ensemble and write the submission; shared by the CLI, studio and jobs.

    `progress(fraction, text)` hears where it stands. The result says how the time was spent.
    """
    t0 = time.perf_counter()
    check_output(out)
    info, paths = eval_paths(data_root)
    cache_dir = cache_dir or Path(data_root) / ".maskcls-cache"
    result: dict = {}
    if method == "greedy-soup":
        choose = (lambda f, text: progress(0.5 * f, f"choosing the soup on validation: {text}")) if progress else None
        chosen, best, steps, notes = greedy_members(runs_root, members, device, cache_dir, tta, choose)
        result.update(chosen=[m.label for m in chosen], greedy_val_f1=best, greedy_steps=steps, notes=notes)
        members, method = chosen, "soup"
        if progress:
            outer = progress
            progress = lambda f, text: outer(0.5 + 0.5 * f, text)  # noqa: E731  the second half: the soup itself
    inputs = EvalInputs(paths, device, cache_dir)
    probs = ensemble_probabilities(runs_root, members, method, inputs, device, cache_dir, tta, progress, tuned)
    probs_path = write_submission(out, info["image_id"].tolist(), probs)
    seconds = time.perf_counter() - t0
    return {**result, "csv": Path(out), "probs_csv": probs_path, "rows": len(info), "probs": probs,
            "score": demo_score(info, probs),
            "seconds": {"total": round(seconds, 2), "decode": round(inputs.decode_seconds, 2),
                        "models": round(seconds - inputs.decode_seconds, 2)}}


def class_distribution(train_labels: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Share (%) of each class in training vs in the predicted classes: a shifted distribution is a warning sign."""
    t = np.bincount(np.asarray(train_labels, int), minlength=18)
    p = np.bincount(np.asarray(predicted, int), minlength=18)
    return pd.DataFrame({"training %": 100 * t / max(t.sum(), 1), "predicted %": 100 * p / max(p.sum(), 1)})
