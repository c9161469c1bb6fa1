"""Sweeps: Optuna studies over run-config keys, whose trials are ordinary runs.

A sweep = a base RunConfig + a search space over its keys (`space`) + a sampler and a pruner, saved as
<runs_root>/sweeps/<NAME>/sweep.json (`definition`). The study lives in an Optuna storage (`storage`): one SQLite
file in the runs root by default, or a database the workers of several servers share. Workers (`worker`) train
the trials; the report (`report`) only reads.
"""
import importlib

_WHERE = {
    "definition": ["Sweep", "create_sweep", "default_storage", "enqueue_trial", "grid_size", "list_sweeps",
                   "load_sweep", "open_study", "storage_url", "sweep_path", "sweeps_root", "trial_config",
                   "trial_run_name"],
    "report": ["best_trial_config", "sweep_figures", "trial_rows", "trials_table"],
    "space": ["KINDS", "NOT_SWEPT", "PRUNERS", "SAMPLERS", "Param", "SweepError", "parse_space"],
    "storage": ["PASSWORD_ENV", "TIMEOUT_ENV", "connect_timeout", "open_storage", "shown_url", "split_password",
                "storage_failure", "with_password"],
    "worker": ["WorkerFolder", "count_done", "list_workers", "reap_lost_trials", "run_worker", "start_worker"],
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    """The package's names, each imported from its module on first use (the space alone stays light)."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'maskcls.orchestration.sweeps' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value
