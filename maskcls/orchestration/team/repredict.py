"""A pulled run's predictions held against its own checkpoint and its own split, on this machine's data: a table
forged to say "0.83" (every row one-hot at its label, a subset of the validation people picked for being right)
is caught, and the figures then come from the checkpoint itself.

- Coverage: the run's config, split on this machine's data (with the corrections it used), names its validation
  photos; the table must hold exactly those.
- A spot check: SPOT photos, drawn the same way every time, predicted again with best.pt; their predicted class
  must agree on at least AGREE of them and their probabilities stay within PROB_TOLERANCE on average (a GPU's bf16
  and this CPU's fp32 differ by far less).
When either fails, the whole validation split is predicted again with the checkpoint and that table replaces the
sent one (its per-epoch history cannot be checked, so it is dropped)."""
from __future__ import annotations

import shutil
import tempfile

import numpy as np

SPOT = 48
AGREE = 0.9
PROB_TOLERANCE = 0.05


def split_rows(cfg: dict, corrections):
    """The validation rows (path, person_id, label) the pulled config's split gives on this machine's data."""
    from maskcls.data.splits import prepare_split
    from maskcls.train.config import RunConfig
    spec = RunConfig.from_dict({**cfg, "corrections": corrections or "none"}).split_spec()
    _, val, _ = prepare_split(spec)
    return val


def predicted(folder, cfg: dict, paths: list[str]) -> np.ndarray:
    """(N, 18) probabilities of the pulled best.pt for `paths`, on the CPU, through its own recipe (a cache in a
    temporary folder, removed after)."""
    import torch

    from maskcls.common.checkpoints import load_checkpoint
    from maskcls.infer.members import EvalInputs, build_model, predict_paths
    from maskcls.train.config import RunConfig
    run_cfg = RunConfig.from_dict(cfg)
    model = build_model(load_checkpoint(folder / "best.pt"), run_cfg, "the pulled best.pt")
    tmp = tempfile.mkdtemp(prefix="maskcls-pull-check-")
    try:
        return predict_paths(model, run_cfg, EvalInputs(list(paths), torch.device("cpu"), tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def spot_check(folder, cfg: dict, table) -> tuple[bool, str]:
    """(the table's probabilities are its checkpoint's, what was measured) on SPOT photos."""
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(table), size=min(SPOT, len(table)), replace=False))
    sent = table[[f"p{i}" for i in range(18)]].to_numpy()[rows]
    again = predicted(folder, cfg, table["path"].iloc[rows].tolist())
    agree = float((again.argmax(1) == sent.argmax(1)).mean())
    diff = float(np.abs(again - sent).mean())
    ok = agree >= AGREE and diff <= PROB_TOLERANCE
    return ok, (f"{len(rows)} validation photos predicted again with its best.pt: the class agrees on {agree:.0%}, "
                f"probabilities differ by {diff:.3f} on average")


def check(folder, cfg: dict, preds, corrections) -> tuple[object, list[str], str]:
    """(the predictions to score: the sent table or the checkpoint's own, what disagreed, what was checked)."""
    from maskcls.data.fingerprints import image_keys
    from maskcls.common.runfolder import predictions_frame
    val = split_rows(cfg, corrections)
    want, have = set(image_keys(val["path"])), set(image_keys(preds["path"]))
    problems = []
    if want != have:
        problems.append(f"its predictions hold {len(have & want)} of the {len(want)} validation photos its config's "
                        f"split holds on this data" + (f" (and {len(have - want)} others)" if have - want else ""))
    ok, measured = spot_check(folder, cfg, preds) if have <= want and have else (False, "no spot check")
    if not ok and have <= want and have:
        problems.append(f"its predictions are not its checkpoint's: {measured}")
    if not problems:
        return preds, [], f"its predictions are its checkpoint's ({measured}) and cover its split"
    probs = predicted(folder, cfg, val["path"].tolist())
    again = predictions_frame(val["path"], val["person_id"].astype(str), val["label"], probs)
    return again, problems, (f"its figures come from its checkpoint, which predicted its {len(val)} validation "
                             f"photos again here")
