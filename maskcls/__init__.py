"""maskcls: the 18-class face-mask / gender / age classification task, as a library, a CLI and a studio.

The few entry points a notebook needs, each under the name of the function behind it, imported on first use (so
`import maskcls` stays light)::

    import maskcls
    index = maskcls.index_data("/data/mask")                      # people, images, labels, skipped files
    cfg = maskcls.create_config("demo-cpu", data_root="/data/mask")
    maskcls.train_run(cfg, "checkpoints", "first-run")            # a run folder: checkpoints, metrics, log
    preds = maskcls.validation_predictions("checkpoints", "first-run")   # then maskcls.report(preds)
    maskcls.predict_submission("/data/mask", "checkpoints", [maskcls.Member("first-run")], "soft", "submission.csv")
"""
from __future__ import annotations

import warnings

__version__ = "0.1.0"

# name -> (module, attribute): the public API, resolved lazily by __getattr__; each name is its function's own
API = {
    "index_data": ("maskcls.data.index", "index_data"),
    "RunConfig": ("maskcls.train.config", "RunConfig"),
    "create_config": ("maskcls.train.config", "create_config"),
    "train_run": ("maskcls.train.driver", "train_run"),
    "validation_predictions": ("maskcls.infer.evaluation", "validation_predictions"),
    "report": ("maskcls.infer.evaluation", "report"),
    "Member": ("maskcls.infer.members", "Member"),
    "predict_submission": ("maskcls.infer.ensemble", "predict_submission"),
    "ensemble_probabilities": ("maskcls.infer.ensemble", "ensemble_probabilities"),
}
RENAMED = {"evaluate": "validation_predictions", "predict": "predict_submission"}  # names before the glossary
__all__ = list(API)


def __getattr__(name: str):
    if name in RENAMED:
        warnings.warn(f"maskcls.{name} is now maskcls.{RENAMED[name]}", DeprecationWarning, stacklevel=2)
        name = RENAMED[name]
    if name not in API:
        raise AttributeError(f"module 'maskcls' has no attribute {name!r}; the public API is {', '.join(API)}")
    import importlib
    module, attr = API[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
