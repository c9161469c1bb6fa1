"""maskcls: the 18-class face-mask / gender / age classification task, as a library, a CLI and a studio.

The few entry points a notebook needs, imported on first use (so `import maskcls` stays light)::

    import maskcls
    index = maskcls.index_data("/data/mask")                      # people, images, labels, skipped files
    cfg = maskcls.create_config("demo-cpu", data_root="/data/mask")
    maskcls.train_run(cfg, "checkpoints", "first-run")            # a run folder: checkpoints, metrics, log
    preds = maskcls.evaluate("checkpoints", "first-run")          # validation predictions; maskcls.report(preds)
    maskcls.predict("/data/mask", "checkpoints", [maskcls.Member("first-run")], "soft", "submission.csv", "cpu")
"""
from __future__ import annotations

__version__ = "0.1.0"

# name -> (module, attribute): the public API, resolved lazily by __getattr__
API = {
    "index_data": ("maskcls.data.index", "index_data"),
    "RunConfig": ("maskcls.train.config", "RunConfig"),
    "create_config": ("maskcls.train.config", "create_config"),
    "train_run": ("maskcls.train.driver", "train_from_config"),  # not `train`: that name is the subpackage
    "evaluate": ("maskcls.infer.evaluation", "run_predictions"),
    "report": ("maskcls.infer.evaluation", "report"),
    "Member": ("maskcls.infer.predict", "Member"),
    "predict": ("maskcls.infer.ensemble", "predict_submission"),
    "ensemble_probabilities": ("maskcls.infer.ensemble", "ensemble_probabilities"),
}
__all__ = list(API)


def __getattr__(name: str):
    if name not in API:
        raise AttributeError(f"module 'maskcls' has no attribute {name!r}; the public API is {', '.join(API)}")
    import importlib
    module, attr = API[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
