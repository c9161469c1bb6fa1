"""Ensembles of checkpoints: weight soups, soft and hard voting, flip TTA, and the submission CSV."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from maskcls.common.settings import default_cache_dir
from maskcls.infer.predict import (
    EvalInputs,
    Member,
    build_model,
    check_output,
    demo_score,
    eval_paths,
    load_member,
    member_config,
    member_run,
    predict_paths,
    write_submission,
)
from maskcls.train.config import RunConfig
from maskcls.train.metrics import macro_f1

METHODS = ("soft", "hard", "soup", "greedy-soup")
METHOD_HELP = {
    "soft": "mean of the members' probabilities (weights optional)",
    "hard": "majority of the members' votes; ties go to the highest mean probability",
    "soup": "average the weights of checkpoints of one architecture, then predict once",
    "greedy-soup": "soup that adds checkpoints best-first, keeping one only if validation macro F1 does not drop",
}


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
    from maskcls.infer.evaluation import apply_bias, load_bias
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


SPLIT_KEYS = ("data_root", "val_ratio", "split_seed", "fold", "n_folds", "corrections", "age_lower", "age_upper")


def shared_validation(runs_root, members: list[Member]) -> tuple[pd.DataFrame, list[str]]:
    """The validation rows of the first member's split, and a note for each member trained on another split."""
    from maskcls.train.driver import prepare_split
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
    `device` is a torch.device or a name ("auto", "cpu", "cuda").
    """
    if isinstance(device, str):
        from maskcls.common.devices import resolve_device
        device = resolve_device(device)
    t0 = time.perf_counter()
    check_output(out)
    info, paths = eval_paths(data_root)
    cache_dir = default_cache_dir(data_root, cache_dir)
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
