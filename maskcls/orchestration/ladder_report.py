"""What a ladder shows: each rung's macro F1 with its interval over people, and each step's paired gain with its
interval, p-value and verdict (pays / no evidence / hurts), and the classes it moved most. Reads only."""
from __future__ import annotations

import numpy as np

from maskcls.common.runfolder import RunFolder
from maskcls.orchestration.ladder import Ladder, Rung, load_ladder
from maskcls.train.comparison import compare_sets, keyed, set_scores, stacked_confusions
from maskcls.train.intervals import percentile, resample_weights


def rung_states(runs_root, ladder: Ladder) -> list[Rung]:
    """Each rung with its runs' states and, for completed runs, their validation predictions (out of fold for
    fold rungs). A run trained on another server (a ladder with claims) is read from the claims database."""
    from maskcls.orchestration.folds import read_oof
    remote = claimed_elsewhere(runs_root, ladder)
    out = []
    for i, (label, _) in enumerate(ladder.rungs()):
        rung = Rung(i, label)
        for name in ladder.run_names(i):
            run = RunFolder(runs_root, name)
            rung.runs[name] = run.state()["state"] if run.exists() else remote.get(name, {}).get("state", "planned")
            fp = (run.read_fingerprints() or {}).get("data") if run.exists() else \
                (remote.get(name, {}).get("status") or {}).get("data_fp")
            if fp:
                rung.prints.add(fp)
        if rung.done:
            if ladder.folds:
                rung.frames = [read_oof(runs_root, f"{ladder.name}-r{i}")]
            else:
                rung.frames = [RunFolder(runs_root, n).read_predictions() if RunFolder(runs_root, n).exists() else
                               remote_predictions(remote[n], n) for n in rung.runs]
                rung.frames = [f for f in rung.frames if f is not None]
        out.append(rung)
    return out


def claimed_elsewhere(runs_root, ladder: Ladder) -> dict:
    """The claims database's rows of the ladder's runs this runs root does not hold ({} for a local ladder)."""
    if not ladder.claims:
        return {}
    from maskcls.orchestration.team.claims import Claims
    with Claims(ladder.claims) as db:
        rows = db.rows(ladder.name)
    return {n: r for n, r in rows.items() if not RunFolder(runs_root, n).exists()}


def remote_predictions(row: dict, name: str):
    """A run's validation predictions as its worker left them in the claims database (checked like a file)."""
    import io

    from maskcls.common.predictions import read_predictions_table
    if not row.get("predictions"):
        return None
    return read_predictions_table(io.StringIO(row["predictions"]),
                                  f"validation predictions of run {name!r} (trained on {row['host']})")


def gain_verdict(comparison: dict) -> str:
    """pays, hurts, no evidence, or cannot judge (too few people, one class, no variance)."""
    from maskcls.train.comparison import verdict_kind
    return {"better": "pays", "worse": "hurts"}.get(verdict_kind(comparison), verdict_kind(comparison))


def ladder_status(runs_root, name: str, *, resamples: int = 2000, claims: str = "") -> dict:
    """Every rung: its runs, mean macro F1 and interval; every step: the paired gain, interval, p, verdict."""
    ladder = load_ladder(runs_root, name, claims)
    rungs = rung_states(runs_root, ladder)
    rows = []
    for rung in rungs:
        row = {"rung": rung.index, "step": rung.label, "runs": rung.runs, "done": rung.done, "macro_f1": None,
               "interval": None}
        if rung.done and rung.frames:
            confs, _ = stacked_confusions(rung.frames, keyed(rung.frames[0]).index.to_numpy())
            row["macro_f1"] = float(set_scores(np.ones((1, confs.shape[1])), confs)[1][0])
            boot = set_scores(resample_weights(confs.shape[1], resamples, 0), confs)[1]
            row["interval"] = [float(x) for x in percentile(boot)]
        rows.append(row)
    steps = []
    for rung in rungs[1:]:
        ref = rungs[rung.index - 1] if ladder.mode == "cumulative" else rungs[0]
        step = {"step": ladder.steps[rung.index - 1]["name"], "rung": rung.index, "set": ladder.steps[rung.index - 1]["set"]}
        other_data = data_differs(ref, rung, step["set"])
        if other_data:
            step["why"] = other_data
        elif rung.done and ref.done and rung.frames and ref.frames:
            # cumulative: the rung over the one before; leave-one-out: the full recipe over the rung without the step
            a, b = (ref, rung) if ladder.mode == "cumulative" else (rung, ref)
            c = compare_sets(a.frames, b.frames, names=(a.label, b.label))
            step.update(gain=c["difference"], interval=c["interval"], p_value=c["p_value"], paired=c["paired"],
                        verdict=gain_verdict(c), moved=c["per_class"][:3], line=c["verdict"])
        elif rung.done and ref.done:  # both ended, but one has nothing to compare: said, never "waiting" for ever
            empty = [r.label for r in (ref, rung) if not r.frames]
            step["why"] = (f"cannot be compared: rung {' and '.join(empty)} ended without validation predictions (see "
                           f"its runs' logs)")
        steps.append(step)
    return {"ladder": name, "mode": ladder.mode, "seeds": ladder.seeds, "folds": ladder.folds, "rungs": rows,
            "steps": steps, "complete": all(r.done for r in rungs), "caution": seed_caution(ladder)}


DATA_KEYS = ("data_root", "corrections", "age_lower", "age_upper")  # a step that sets one changes the labels on purpose


def data_differs(a: Rung, b: Rung, step_set: dict) -> str | None:
    """Why two rungs cannot be compared because their runs trained on other data (the fingerprints each run fixed
    when it trained), unless the step itself is about the data; None when they can."""
    if any(k in step_set for k in DATA_KEYS) or not a.prints or not b.prints:
        return None
    if len(a.prints | b.prints) > 1:
        return (f"cannot be compared: rungs {a.label} and {b.label} trained on different data (data fingerprints "
                f"{', '.join(sorted(a.prints | b.prints))}: a corrections file accepted or a data root changed while "
                f"the ladder ran?), and the step does not change the data")
    return None


def seed_caution(ladder: Ladder) -> str | None:
    """What a ladder of one training per rung cannot claim (None when its rungs have seeds)."""
    if ladder.seeds > 1:
        return None
    what = "one fold group per rung (one training per fold)" if ladder.folds else "one seed per rung"
    return (f"{what}: a step's verdict compares two trained models and cannot separate the step from seed noise "
            f"(two seeds of one config can differ as much); create the ladder with --seeds 3 for verdicts about the "
            f"steps")
