"""Ensembles of checkpoints: soft and hard voting, weight soups, the greedy soup, flip TTA, and the submission.

One registry of methods (`list_methods()`, names and help in maskcls.infer.methods): each takes the members and
the shared inputs and returns the ensemble's probabilities, so the eval set, the validation table and the
benchmarks all go through the same code.
"""
from __future__ import annotations

import time
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from maskcls.common.settings import default_cache_dir
from maskcls.infer.members import EvalInputs, Member, build_model, load_member, member_config, member_run, predict_paths
from maskcls.infer.methods import METHOD_HELP, METHODS
from maskcls.infer.demo_score import demo_score
from maskcls.infer.submission import check_output, eval_paths, write_submission
from maskcls.train.config import SPLIT_KEYS, RunConfig
from maskcls.train.metrics import macro_f1


# -- combining probabilities and weights ----------------------------------------------------------------------
def check_one_architecture(configs: list[RunConfig], labels: list[str]) -> None:
    """Weights can only be averaged within one architecture; say which member breaks that."""
    first = configs[0]
    for cfg, label in zip(configs[1:], labels[1:]):
        if (cfg.model, cfg.head) != (first.model, first.head):
            raise ValueError(f"cannot average weights of different architectures: {labels[0]} is {first.model} "
                             f"({first.head} head) but {label} is {cfg.model} ({cfg.head} head); use soft or hard voting")


def relative_weights(weights: list[float] | None, n: int) -> np.ndarray:
    """Weights that sum to 1, in the proportions given. Dividing by the largest first keeps a sum of huge weights
    finite (1e308 + 1e308 is inf, 1 + 1 is not), so members weighted 1e308:1e308 vote exactly as 1:1 do."""
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"expected one weight per member ({n}), got {w.shape[0] if w.ndim == 1 else w.shape}")
    bad = [f"{v!r}" for v in w if not (np.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"member weights must be finite numbers above 0, got {', '.join(bad)}")
    w = w / w.max()
    return w / w.sum()


def soup_state(states: list[dict], labels: list[str], configs: list[RunConfig],
               weights: list[float] | None = None) -> dict:
    """Average checkpoints of one architecture (uniform or weighted). Mixing architectures is refused."""
    check_one_architecture(configs, labels)
    w = relative_weights(weights, len(states))
    out = {}
    for key, ref in states[0].items():
        if ref.is_floating_point():
            out[key] = sum(float(wi) * s[key].float() for wi, s in zip(w, states)).to(ref.dtype)
        else:
            out[key] = ref.clone()  # counters such as num_batches_tracked
    return out


def soft_vote(probs: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """The members' probabilities averaged in the given proportions."""
    return np.tensordot(relative_weights(weights, len(probs)), np.stack(probs), axes=1).astype(np.float32)


def hard_vote(probs: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """Each member's argmax counts its weight; ties go to the tied class with the highest weighted mean probability."""
    w = relative_weights(weights, len(probs))
    stacked = np.stack(probs)  # (M, N, C)
    votes = np.zeros(stacked.shape[1:], dtype=np.float64)
    rows = np.arange(stacked.shape[1])[None, :].repeat(len(probs), 0)
    np.add.at(votes, (rows, stacked.argmax(2)), np.broadcast_to(w[:, None], rows.shape))
    mean = np.tensordot(w, stacked, axes=1)
    top = np.isclose(votes, votes.max(1, keepdims=True), rtol=0, atol=1e-12)
    return np.where(top, mean, -1.0).argmax(1)


# -- the shared context ---------------------------------------------------------------------------------------
@dataclass
class Ensembling:
    """What every method needs: where the runs are, the shared decoded inputs, and how to predict.

    `labels`: the inputs' true classes when they are a validation set (then a greedy soup chooses on them).
    """

    runs_root: str | Path
    inputs: EvalInputs
    tta: bool = False
    tuned: bool = False
    progress: Callable | None = None
    labels: np.ndarray | None = None
    info: dict = field(default_factory=dict)  # what a method reports besides its probabilities

    def tell(self, fraction: float, text: str) -> None:
        if self.progress:
            self.progress(fraction, text)


def _member_progress(ctx: Ensembling, i: int, n: int):
    """Map one member's decode progress into the ensemble's overall fraction."""
    if ctx.progress is None:
        return None
    return lambda f, text: ctx.progress((i + 0.5 * f) / n, f"member {i + 1}/{n}: {text}")


def member_probabilities(ctx: Ensembling, members: list[Member]) -> list[np.ndarray]:
    """Each member's (N, 18) probabilities; `ctx.tuned` applies a run's saved macro-F1 class biases."""
    from maskcls.infer.evaluation import apply_bias, load_bias
    if ctx.tuned:
        untuned = [m.run for m in members if load_bias(member_run(ctx.runs_root, m).root,
                                                       member_run(ctx.runs_root, m).name) is None]
        if untuned:
            raise ValueError(f"--tuned: run(s) {', '.join(sorted(set(untuned)))} have no tuned class biases; fit them "
                             f"first with `maskcls evaluate RUN --tune` (or the Evaluate page), or leave --tuned off")
    out = []
    for i, m in enumerate(members):
        ctx.inputs.progress = _member_progress(ctx, i, len(members))
        ckpt, cfg = load_member(ctx.runs_root, m)
        ctx.tell(i / len(members), f"member {i + 1}/{len(members)}: {m.label}")
        p = predict_paths(build_model(ckpt, cfg, m.label), cfg, ctx.inputs, ctx.tta)
        run = member_run(ctx.runs_root, m)
        bias = load_bias(run.root, run.name) if ctx.tuned else None
        out.append(apply_bias(p, bias) if bias is not None else p)
        ctx.tell((i + 1) / len(members), f"member {i + 1}/{len(members)} done")
    return out


# -- the methods ----------------------------------------------------------------------------------------------
MethodFn = Callable[[Ensembling, list[Member], "list[np.ndarray] | None"], np.ndarray]
_METHODS: dict[str, MethodFn] = {}


def register(name: str):
    """Register an ensemble method under `name` (its help text lives in maskcls.infer.methods)."""
    def wrap(fn: MethodFn) -> MethodFn:
        _METHODS[name] = fn
        return fn
    return wrap


def list_methods() -> list[str]:
    return list(_METHODS)


def method(name: str) -> MethodFn:
    if name not in _METHODS:
        raise ValueError(f"unknown ensemble method {name!r}; valid: {', '.join(_METHODS)}")
    return _METHODS[name]


@register("soft")
def _soft(ctx: Ensembling, members: list[Member], probs=None) -> np.ndarray:
    probs = probs if probs is not None else member_probabilities(ctx, members)
    return soft_vote(probs, [m.weight for m in members])


@register("hard")
def _hard(ctx: Ensembling, members: list[Member], probs=None) -> np.ndarray:
    probs = probs if probs is not None else member_probabilities(ctx, members)
    return np.eye(18, dtype=np.float32)[hard_vote(probs, [m.weight for m in members])]


@register("soup")
def _soup(ctx: Ensembling, members: list[Member], probs=None) -> np.ndarray:
    loaded = [load_member(ctx.runs_root, m) for m in members]
    cfgs = [c for _, c in loaded]
    state = soup_state([c["model"] for c, _ in loaded], [m.label for m in members], cfgs, [m.weight for m in members])
    ctx.inputs.progress = _member_progress(ctx, 0, 1)
    out = predict_paths(build_model({"model": state}, cfgs[0], "soup"), cfgs[0], ctx.inputs, ctx.tta)
    ctx.tell(1.0, f"soup of {len(members)} checkpoint(s) done")
    return out


@register("greedy-soup")
def _greedy(ctx: Ensembling, members: list[Member], probs=None) -> np.ndarray:
    """Choose on the inputs when they are a validation set (then scores there are optimistic), else on the
    members' shared validation split; then soup the chosen."""
    if ctx.labels is not None:
        chosen, best, steps = greedy_soup(ctx.runs_root, members, ctx.inputs, ctx.labels, tta=ctx.tta,
                                          alone_probs=probs)
        notes = ["the greedy soup chose its checkpoints on this validation split, so its score here is optimistic"]
    else:
        chosen, best, steps, notes = greedy_members(ctx.runs_root, members, ctx.inputs.device, ctx.inputs.cache_dir,
                                                    tta=ctx.tta)
    ctx.info.update(chosen=[m.label for m in chosen], greedy_val_f1=best, greedy_steps=steps,
                    notes=ctx.info.get("notes", []) + notes)
    return _soup(ctx, chosen)


def ensemble_probabilities(runs_root, members: list[Member], method_name: str, inputs: EvalInputs, *,
                           tta: bool = False, tuned: bool = False, progress=None) -> np.ndarray:
    """The ensemble's (N, 18) probabilities over `inputs` (for hard voting: one-hot of the vote)."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    return method(method_name)(Ensembling(runs_root, inputs, tta, tuned, progress), members, None)


# -- the greedy soup ------------------------------------------------------------------------------------------
def greedy_soup(runs_root, candidates: list[Member], inputs: EvalInputs, labels: np.ndarray, *, tta: bool = False,
                progress=None, alone_probs: list[np.ndarray] | None = None) -> tuple[list[Member], float, pd.DataFrame]:
    """Add checkpoints best-first; keep one only if validation macro F1 does not drop.

    Each checkpoint is read once. `alone_probs` (each candidate's own validation probabilities, when the caller has
    them) saves scoring the candidates one by one again. Returns the kept members, the soup's macro F1 and one row
    per candidate saying what happened to it.
    """
    if not candidates:
        raise ValueError("a greedy soup needs at least one candidate checkpoint")
    loaded = {m.label: load_member(runs_root, m) for m in candidates}
    check_one_architecture([loaded[m.label][1] for m in candidates], [m.label for m in candidates])
    labels = np.asarray(labels)

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


def greedy_members(runs_root, candidates: list[Member], device, cache_dir, *, tta: bool = False,
                   progress=None) -> tuple[list[Member], float, pd.DataFrame, list[str]]:
    """Greedy soup selection on the candidates' shared validation split (notes flag other splits)."""
    val_rows, notes = shared_validation(runs_root, candidates)
    inputs = EvalInputs(val_rows["path"].tolist(), device, cache_dir)
    chosen, best, steps = greedy_soup(runs_root, candidates, inputs, val_rows["label"].to_numpy(), tta=tta,
                                      progress=progress)
    return chosen, best, steps, notes


def shared_validation(runs_root, members: list[Member]) -> tuple[pd.DataFrame, list[str]]:
    """The validation rows of the first member's split, and a note for each member trained on another split."""
    from maskcls.data.splits import prepare_split
    cfgs = [member_config(runs_root, m) for m in members]
    ref = {k: getattr(cfgs[0], k) for k in SPLIT_KEYS}
    notes = []
    for m, c in zip(members[1:], cfgs[1:]):
        diff = [k for k in SPLIT_KEYS if getattr(c, k) != ref[k]]
        if diff:
            notes.append(f"{m.label} was trained on another split ({', '.join(diff)} differ): its validation score "
                         f"may include images it trained on")
    _, val_rows, _ = prepare_split(cfgs[0].split_spec())
    return val_rows, notes


# -- what the CLI, the pages and the jobs call ----------------------------------------------------------------
def score_members(runs_root, members: list[Member], method_name: str, device, cache_dir, *, tta: bool = False,
                  progress=None) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """One table: every member and the ensemble on the shared validation split (macro F1, accuracy)."""
    run_method = method(method_name)
    val_rows, notes = shared_validation(runs_root, members)
    y = val_rows["label"].to_numpy()
    ctx = Ensembling(runs_root, EvalInputs(val_rows["path"].tolist(), device, cache_dir), tta, progress=progress,
                     labels=y)
    with leases(runs_root, members):
        probs = member_probabilities(ctx, members)
        ctx.progress = None
        ens = run_method(ctx, members, probs)
    rows = [{"member": m.label, "model": member_config(runs_root, m).model, **scored(val_rows, p)}
            for m, p in zip(members, probs)]
    name = method_name
    if "chosen" in ctx.info:
        name = f"greedy-soup of {len(ctx.info['chosen'])}/{len(members)}: {', '.join(ctx.info['chosen'])}"
    rows.append({"member": f"ensemble ({name}{', flip TTA' if tta else ''})", "model": "", **scored(val_rows, ens)})
    table = pd.DataFrame(rows)
    table.attrs["verdict"] = against_best_member(val_rows, probs, ens, [m.label for m in members])
    table.attrs["people"] = int(val_rows["person_id"].nunique())
    return table, notes + ctx.info.get("notes", []), ens


def scored(val_rows: pd.DataFrame, probs: np.ndarray) -> dict:
    """Macro F1 with its 95 % interval over the validation people, and accuracy, of one set of probabilities."""
    from maskcls.train.intervals import interval_of_frame
    frame = _frame(val_rows, probs)
    ci = interval_of_frame(frame).as_dict()
    return {"macro_f1": ci["macro_f1"], "F1 low": ci["macro_f1_ci"][0], "F1 high": ci["macro_f1_ci"][1],
            "accuracy": float((probs.argmax(1) == val_rows["label"].to_numpy()).mean())}


def _frame(val_rows: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    from maskcls.common.runfolder import predictions_frame
    return predictions_frame(val_rows["path"], val_rows["person_id"], val_rows["label"], probs)


def against_best_member(val_rows: pd.DataFrame, member_probs: list, ens: np.ndarray, labels: list[str]) -> dict:
    """The ensemble against its best member on the same people (paired): is combining them better at all?"""
    from maskcls.train.comparison import compare_sets
    y = val_rows["label"].to_numpy()
    best = int(np.argmax([macro_f1(y, p.argmax(1)) for p in member_probs]))
    c = compare_sets([_frame(val_rows, member_probs[best])], [_frame(val_rows, ens)],
                     names=(f"the best member ({labels[best]})", "the ensemble"))
    below = c["difference"] < 0
    return {"best_member": labels[best], "difference": c["difference"], "interval": c["interval"],
            "verdict": c["verdict"], "judged": c["judged"],
            "text": c["verdict"] + (f". The ensemble scores below its best member ({labels[best]})" if below else "")}


def predict_submission(data_root, runs_root, members: list[Member], method_name: str, out, *, device="auto",
                       tta: bool = False, tuned: bool = False, cache_dir=None, progress=None,
                       own_place: bool = False) -> dict:
    """Predict eval/info.csv with the ensemble and write the submission; shared by the CLI, studio and jobs.

    `progress(fraction, text)` hears where it stands. The result says how the time was spent.
    `device` is a torch.device or a name ("auto", "cpu", "cuda"). `own_place`: `out` is a submission folder's
    own file (a background submission), not a place a user named.
    """
    if isinstance(device, str):
        from maskcls.common.devices import resolve_device
        device = resolve_device(device)
    run_method = method(method_name)
    if not members:
        raise ValueError("an ensemble needs at least one member")
    t0 = time.perf_counter()
    check_output(out, data_root, None if own_place else runs_root)
    info, paths = eval_paths(data_root)
    inputs = EvalInputs(paths, device, default_cache_dir(data_root, cache_dir))
    ctx = Ensembling(runs_root, inputs, tta, tuned, progress)
    with leases(runs_root, members):  # no prune removes a member's checkpoint until it is recorded as used
        probs = run_method(ctx, members, None)
        probs_path = write_submission(out, info["image_id"].tolist(), probs)
        mark_members_used(runs_root, members, f"{method_name} submission {Path(out).resolve()}")
    seconds = time.perf_counter() - t0
    return {**ctx.info, "csv": Path(out), "probs_csv": probs_path, "rows": len(info), "probs": probs,
            "score": demo_score(info, probs),
            "seconds": {"total": round(seconds, 2), "decode": round(inputs.decode_seconds, 2),
                        "models": round(seconds - inputs.decode_seconds, 2)}}


@contextmanager
def leases(runs_root, members: list[Member]):
    """Every member's run held (RunFolder.lease) while the block runs: a prune skips them until it ends."""
    with ExitStack() as stack:
        for run in {str(member_run(runs_root, m).path): member_run(runs_root, m) for m in members}.values():
            stack.enter_context(run.lease())
        yield


def mark_members_used(runs_root, members: list[Member], by: str) -> None:
    """Each member's checkpoint is recorded in its run as used by this submission (or soup): a prune keeps it."""
    for m in members:
        try:
            member_run(runs_root, m).mark_used(m.checkpoint, by)
        except (OSError, ValueError) as e:  # a read-only run folder: the submission stands, the mark is missing
            warnings.warn(f"could not record that {by} uses {m.run}:{m.checkpoint} ({e}); a prune may remove it")


def class_distribution(train_labels: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Share (%) of each class in training vs in the predicted classes: a shifted distribution is a warning sign."""
    t = np.bincount(np.asarray(train_labels, int), minlength=18)
    p = np.bincount(np.asarray(predicted, int), minlength=18)
    return pd.DataFrame({"training %": 100 * t / max(t.sum(), 1), "predicted %": 100 * p / max(p.sum(), 1)})


__all__ = ["METHODS", "METHOD_HELP", "Ensembling", "class_distribution", "ensemble_probabilities", "greedy_members",
           "greedy_soup", "hard_vote", "list_methods", "member_probabilities", "predict_submission", "relative_weights",
           "score_members",
           "soft_vote", "soup_state"]
