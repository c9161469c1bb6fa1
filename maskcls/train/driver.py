"""The training driver: config in, run folder out (status, metrics, checkpoints, best predictions)."""
from __future__ import annotations

import os
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

from maskcls.common.checkpoints import save_checkpoint
from maskcls.common.jobfolder import Cancelled, error_text, now, raise_cancelled_on_sigterm
from maskcls.common.progress import eta_text
from maskcls.common.runfolder import RunFolder, create_run, predictions_frame
from maskcls.common.settings import cpu_threads
from maskcls.data.labels import AgeBounds, class_names
from maskcls.models.backbones import set_backbone_trainable
from maskcls.train.config import RunConfig
from maskcls.train.startable import check_startable  # noqa: F401  (re-exported: where every caller finds it)
from maskcls.train.dist import Dist, init_dist, select_device
from maskcls.train.engine import train_one_epoch, validate
from maskcls.train.inputs import Data, load_data
from maskcls.train.intervals import add_selection, run_intervals
from maskcls.train.learner import Learner, create_learner, resume_from
from maskcls.train.metrics import epoch_scores
from maskcls.train.tracking import open_tracking


def run_training(cfg: RunConfig, run: RunFolder, resume: bool = False, progress=None, should_stop=None) -> dict:
    """Train as `cfg` says into `run`; returns the final status. Failures are written, then re-raised.

    `progress` (a TerminalProgress, optional) hears each epoch's line and the steps within it. While it
    trains, this process holds the run's lock: a second trainer of the same folder is refused.
    `should_stop(epoch, metrics_row) -> bool` is asked after each epoch's checkpoint is written (a sweep's
    pruner): True ends the run there, in the state "pruned".
    """
    dist = init_dist()
    lock = None
    raise_cancelled_on_sigterm()  # before the status names this process: a cancel may come at once
    if dist.main:
        run.path.mkdir(parents=True, exist_ok=True)
        lock = run.acquire_lock()
        started = run.read_status().get("started") or now()
        fields = {} if _inside_own_job(run) else process_fields()  # a job's status names its job process
        run.write_status(state="running", **fields, started=started, error=None,
                         epoch=run.read_status().get("epoch", 0), epochs=cfg.epochs)
    try:
        status = _train(cfg, run, resume=resume, dist=dist, progress=progress, should_stop=should_stop)
    except (Cancelled, KeyboardInterrupt) as e:
        if dist.main:
            run.log(f"cancelled ({'Ctrl-C' if isinstance(e, KeyboardInterrupt) else 'SIGTERM'}); checkpoints "
                    f"written so far stay loadable: resume with `maskcls train --resume {run.name}`")
            run.write_status(state="cancelled", ended=now(), pid=None)
        raise Cancelled(f"{'Ctrl-C' if isinstance(e, KeyboardInterrupt) else 'cancelled'}: run {run.name!r} keeps the "
                        f"checkpoints written so far; continue it with `maskcls train --resume {run.name}`") from None
    except BaseException as e:
        if dist.main:
            msg = error_text(e)
            run.log("failed: " + msg + "\n" + "".join(traceback.format_exception(e)[-6:]))
            run.write_status(state="failed", ended=now(), error=msg, pid=None)
        raise
    finally:
        if progress is not None:
            progress.close()
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if lock is not None:
            lock.close()
    return status


def process_fields() -> dict:
    """The status fields that name this process: pid and kernel start time (a cancel verifies both)."""
    from maskcls.common.procs import proc_start
    return {"pid": os.getpid(), "pid_start": proc_start(os.getpid())}


def _inside_own_job(run: RunFolder) -> bool:
    """This process was spawned for `run` (a job, or a torchrun rank under it): its job process is in the status."""
    from maskcls.common.procs import JOB_ENV
    return os.environ.get(JOB_ENV) == str(run.path.resolve()) and os.environ.get("LOCAL_RANK") is not None


def _train(cfg: RunConfig, run: RunFolder, *, resume: bool, dist: Dist, progress=None, should_stop=None) -> dict:
    """The driver: data, model, resume, the trackers, then the epochs."""
    say = _teller(run, dist, progress)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = select_device(cfg.device, dist)
    if device.type == "cpu":  # the job runner says how many cores this job may use
        torch.set_num_threads(max(1, cpu_threads() // dist.world))
    data = load_data(cfg, device, dist, say, progress, stage=_stager(run) if dist.main else None)
    if dist.main:
        run.write_fingerprints(data.prints)
        run.keep_corrections(cfg.corrections)
    learner = create_learner(cfg, data, device=device, dist=dist, run=run, say=say)
    start_epoch, best_f1 = resume_from(run, learner, say) if resume else (1, -1.0)
    if resume and start_epoch > 1:
        restore_summary(run, start_epoch - 1, best_f1)
    say(f"model {cfg.model} ({cfg.head} head) on {device}; {cfg.epochs} epochs of {learner.steps} steps; "
        f"world {dist.world}")
    learner.tracking = open_tracking(cfg, run, lambda m: run.log(f"WARNING: {m}")) if dist.main else None
    try:
        status = _epochs(cfg, run, data, learner, dist=dist, first=start_epoch, best_f1=best_f1, say=say,
                         progress=progress, should_stop=should_stop)
    except BaseException as e:
        close_tracking(learner.tracking, run, "cancelled" if isinstance(e, (Cancelled, KeyboardInterrupt)) else
                       "failed")
        raise
    close_tracking(learner.tracking, run, status.get("state", "completed"))
    return status


def close_tracking(tracking, run: RunFolder, state: str) -> None:
    """The trackers' summary and end (they never hold the run up for long: maskcls.train.tracking)."""
    if tracking is None:
        return
    st = run.read_status()
    tracking.close({"state": state, "best_f1": st.get("best_f1"), "best_epoch": st.get("best_epoch"),
                    "epochs": st.get("epoch")}, run.best_path if run.best_path.exists() else None)


def _epochs(cfg: RunConfig, run: RunFolder, data: Data, learner: Learner, *, dist: Dist, first: int, best_f1: float,
            say, progress=None, should_stop=None) -> dict:
    """One loop step per epoch: train, validate, save; a sweep's pruner may stop it early."""
    frozen = cfg.freeze == "head"
    mix_g = torch.Generator().manual_seed(cfg.seed + 7)
    started = time.perf_counter()
    for epoch in range(first, cfg.epochs + 1):
        if frozen and cfg.unfreeze_after and epoch > cfg.unfreeze_after:
            set_backbone_trainable(learner.model, True)
            frozen = False
            say(f"epoch {epoch}: backbone unfrozen")
        row = run_epoch(cfg, epoch, data, learner, dist=dist, run=run, mix_g=mix_g, progress=progress)
        if dist.main:
            best_f1 = save_epoch(cfg, run, epoch, row, data=data, learner=learner, best_f1=best_f1)
            eta = (time.perf_counter() - started) / (epoch - first + 1) * (cfg.epochs - epoch)
            say(epoch_line(epoch, cfg.epochs, row) + (f", ETA {eta_text(eta)}" if epoch < cfg.epochs else ""))
        if dist.world > 1:
            torch.distributed.barrier()
        if dist.main and should_stop is not None and should_stop(epoch, row) and epoch < cfg.epochs:
            say(f"pruned after epoch {epoch}: the sweep's pruner stopped it (macro F1 {row['val_macro_f1']:.4f}); "
                f"its checkpoints stay loadable")
            return run.write_status(state="pruned", ended=now(), pid=None)
    if not dist.main:
        return {}
    status = run.write_status(state="completed", ended=now(), pid=None, progress=1.0)
    say("completed: trained on all data; best.pt is the last epoch" if cfg.full_data else
        f"completed: best validation macro F1 {best_f1:.4f}")
    return status


def _stager(run: RunFolder):
    """stage(text) -> a (done, total) callback writing the preparation step, its rate and ETA into status.json
    (at most twice a second): a job shows a figure within seconds of starting, not after its first epoch."""
    def stage(text: str):
        t0, last = time.perf_counter(), [0.0]

        def report(done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] < 0.5 and done < total:
                return
            last[0] = now
            rate = done / max(now - t0, 1e-9)
            run.write_status(stage=f"{text}: {done}/{total}", images_per_s=round(rate, 1) if done else None,
                             eta_s=round((total - done) / rate, 1) if done else None)
        return report
    return stage


def _teller(run: RunFolder, dist: Dist, progress):
    """The driver's voice: the run's log.txt, and the terminal when a progress display is given."""
    def say(message: str) -> None:
        if not dist.main:
            return
        run.log(message)
        if progress is not None:
            progress.line(message)
    return say


def run_epoch(cfg: RunConfig, epoch: int, data: Data, learner: Learner, *, dist: Dist, run: RunFolder, mix_g,
              progress=None) -> dict:
    """Train one epoch, then validate on the main process; returns the metrics row (empty elsewhere)."""
    t0 = time.perf_counter()
    bar = progress.count(f"epoch {epoch}/{cfg.epochs}", "step") if progress is not None and dist.main else None
    pace = data.pace

    def on_step(step, n):
        if bar is not None:
            bar(step, n)
        pace.step(step)
        if dist.main and (step in (3, 6) or step % 10 == 0 or step == n):  # a first figure within seconds
            run.write_status(epoch=epoch - 1, step=step, progress=round(((epoch - 1) + step / n) / cfg.epochs, 4),
                             stage=f"training epoch {epoch}", **pace.figures(epoch, step, n, cfg.epochs,
                                                                             cfg.batch_size))
    tr = train_one_epoch(learner.train_model, data.train_loader, learner.loss_fn, learner.optimizer,
                         scheduler=learner.scheduler, device=learner.device, amp=cfg.amp, grad_clip=cfg.grad_clip,
                         ema=learner.ema, spec=cfg.augment_spec(), mix_generator=mix_g,
                         limit_batches=cfg.limit_batches, on_step=on_step)
    if dist.world > 1:
        stats = torch.tensor([tr["train_images"], tr["train_loss"] * tr["train_images"]], dtype=torch.float64,
                             device=learner.device if learner.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(stats)
        tr["train_images_all"] = int(stats[0])
    if not dist.main:
        return {}
    if data.val_rows.empty:  # full_data: nothing held out, nothing to score
        return {"epoch": epoch, **tr, "val_loss": None, "val_accuracy": None, "val_macro_f1": None,
                "lr": learner.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0, "_probs": None}
    eval_model = learner.ema.module if learner.ema is not None else learner.model
    v0 = time.perf_counter()
    val_stats, probs = validate(eval_model, data.val_loader, data.val_rows["label"].to_numpy(), learner.device,
                                cfg.amp)
    pace.validated(time.perf_counter() - v0)
    scores = epoch_scores(data.val_rows["label"].to_numpy(), probs)
    return {"epoch": epoch, **tr, **val_stats, **scores, "lr": learner.optimizer.param_groups[0]["lr"],
            "val_images": len(data.val_rows), "val_seconds": round(time.perf_counter() - v0, 3),
            "seconds": time.perf_counter() - t0, "_probs": probs}


def save_epoch(cfg: RunConfig, run: RunFolder, epoch: int, row: dict, *, data: Data, learner: Learner,
               best_f1: float) -> float:
    """Metrics row, epoch file (weights only), best.pt and its predictions, last.pt (with optimizer state);
    then prune epoch files beyond `keep_epochs`. Returns the best macro F1 so far."""
    probs = row.pop("_probs")
    run.append_metrics(row)
    if learner.tracking is not None:
        learner.tracking.epoch(row)
    f1 = row["val_macro_f1"]
    improved = f1 is None or f1 > best_f1  # full_data: no score, so best.pt is always the latest epoch
    best_f1 = best_f1 if f1 is None else max(best_f1, f1)
    eval_model = learner.ema.module if learner.ema is not None else learner.model
    weights = {"model": eval_model.state_dict(), "config": cfg.to_dict(),
               "classes": class_names(AgeBounds(cfg.age_lower, cfg.age_upper)), "epoch": epoch,
               "val_macro_f1": f1, "best_f1": best_f1}
    save_checkpoint(run.epoch_path(epoch), weights)
    if improved:
        save_checkpoint(run.best_path, weights)
    if probs is not None:
        frame = predictions_frame(data.val_rows["path"], data.val_rows["person_id"], data.val_rows["label"], probs)
        run.write_history(frame, epoch, probs.argmax(1))
        stored = run_intervals(frame, eval_people=data.eval_people, epoch=epoch) if improved else run.read_intervals()
        if improved:
            run.write_predictions(frame, epoch)
        if stored is not None:  # once per epoch, never per page draw
            run.write_intervals(add_selection(stored, run.read_history()))
        if improved and learner.tracking is not None:
            from sklearn.metrics import confusion_matrix
            learner.tracking.best(confusion_matrix(frame["label"], probs.argmax(1), labels=list(range(18))), epoch)
    save_checkpoint(run.last_path, {**weights, "optimizer": learner.optimizer.state_dict(),
                                    "scheduler": learner.scheduler.state_dict(),
                                    "ema": learner.ema.state_dict() if learner.ema is not None else None})
    run.prune_epochs(cfg.keep_epochs)
    run.write_status(epoch=epoch, step=0, progress=round(epoch / cfg.epochs, 4), best_f1=best_f1 if f1 is not None else None,
                     best_epoch=epoch if improved else run.read_status().get("best_epoch"),
                     **{**data.pace.figures(epoch + 1, 0, max(learner.steps, 1), cfg.epochs, cfg.batch_size),
                        "images_per_s": round(row["images_per_s"], 1)})
    _record_speed(cfg, run, learner, row)
    return best_f1


def _record_speed(cfg: RunConfig, run: RunFolder, learner: Learner, row: dict) -> None:
    """This epoch's rates, for the next estimate of a run like this one (maskcls.orchestration.estimate)."""
    if cfg.limit_batches or row.get("train_images", 0) < cfg.batch_size * 4:
        return  # a smoke run's few batches measure warm-up, not speed
    from maskcls.train.pace import record_speed
    val_ips = row["val_images"] / row["val_seconds"] if row.get("val_seconds") else None
    try:
        record_speed(run.root, cfg, learner.device.type, train_ips=row["images_per_s"], val_ips=val_ips)
    except (OSError, ValueError, TimeoutError):
        pass  # an estimate's input, never a reason for a run to fail


def epoch_line(epoch: int, epochs: int, row: dict) -> str:
    if row["val_macro_f1"] is None:
        return (f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}, no validation (all data), "
                f"{row['images_per_s']:.0f} img/s, {row['seconds']:.1f}s")
    return (f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f}, "
            f"val acc {row['val_accuracy']:.4f}, val macro F1 {row['val_macro_f1']:.4f}, "
            f"{row['images_per_s']:.0f} img/s, {row['seconds']:.1f}s")


def train_run(cfg: RunConfig, runs_root: str | os.PathLike, name: str, resume: bool = False,
                      progress=None) -> dict:
    """Foreground training (the CLI, tests): a new run folder, created atomically, or a resume of one.

    A new run refuses an existing name; a resume refuses a run that is queued or running, and waits for
    its device's slot like a background job does.
    """
    if not resume:
        check_startable(cfg)
        warn_if_no_room(cfg, runs_root)
        run = create_run(runs_root, name, cfg)
        return run_training(RunConfig.from_dict(run.read_config()), run, False, progress)  # its paths absolute
    run = RunFolder.open(runs_root, name)
    check_resumable(run)
    from maskcls.common.devices import device_of
    from maskcls.train.slots import slot_held
    cfg = RunConfig.from_dict(run.read_config())
    with slot_held(run, device_of(cfg.device)):
        return run_training(cfg, run, True, progress)


def restore_summary(run: RunFolder, epoch: int, best_f1: float) -> None:
    """A resumed run's status says where the checkpoint left it (a lost or damaged status.json would otherwise end
    a resume with nothing left to train as "epoch 0, best F1 none" while its checkpoints say otherwise)."""
    status = run.read_status()
    scored = [m for m in run.read_metrics() if m.get("val_macro_f1") is not None]
    best = max(scored, key=lambda m: m["val_macro_f1"]) if scored else {}
    fill = {"best_f1": best_f1 if best_f1 >= 0 else None, "best_epoch": best.get("epoch")}
    run.write_status(epoch=epoch, **{k: v for k, v in fill.items() if status.get(k) is None and v is not None})


def expected_checkpoint_bytes(cfg: RunConfig) -> int:
    """What a run's checkpoints will take: best.pt and each kept epoch file (fp32 weights) and last.pt (weights
    and the optimizer's two moments)."""
    from maskcls.models.backbones import parameter_count
    kept = min(cfg.keep_epochs or cfg.epochs, cfg.epochs)
    return 4 * parameter_count(cfg.model) * (1 + kept + 3)


def room_warning(cfg: RunConfig, runs_root) -> str | None:
    """A warning, before a run starts, when the runs root's disk cannot hold its checkpoints (None when it can)."""
    import shutil
    folder = Path(runs_root)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        need, free = expected_checkpoint_bytes(cfg), shutil.disk_usage(folder).free
    except (OSError, RuntimeError, ValueError):
        return None  # the model is named by check_startable; a disk that cannot be asked is not guessed at
    if need <= free:
        return None
    return (f"the run's checkpoints will need about {need / 2**30:.1f} GB ({cfg.model}: best.pt, last.pt with the "
            f"optimizer state, {min(cfg.keep_epochs or cfg.epochs, cfg.epochs)} epoch files) but {folder} has "
            f"{free / 2**30:.1f} GB free: `maskcls runs prune` frees finished runs' epoch files, or lower keep_epochs")


def warn_if_no_room(cfg: RunConfig, runs_root) -> None:
    message = room_warning(cfg, runs_root)
    if message:
        warnings.warn(message, stacklevel=3)


def full_data_config(run: RunFolder) -> RunConfig:
    """A finished run's config for "train on all data": training + validation people, for as many epochs as
    the run needed to reach its best validation F1 (the count a held-out split chose)."""
    cfg = RunConfig.from_dict(run.read_config())
    if cfg.full_data:
        raise ValueError(f"{run.name!r} already trained on all data")
    status = run.read_status()
    if status.get("state") not in ("completed", "pruned"):
        raise ValueError(f"{run.name!r} is {status.get('state', 'unknown')}: its best epoch count is known once it "
                         f"has completed")
    epochs = int(status.get("best_epoch") or cfg.epochs)
    return RunConfig.from_dict({**cfg.to_dict(), "full_data": True, "fold": -1, "epochs": epochs})


def check_resumable(run: RunFolder) -> None:
    """A resume needs a run folder with a config, not queued or running (its process alive)."""
    if not run.exists():
        raise ValueError(f"cannot resume {run.name!r}: no run folder {run.path}")
    run.refuse_if_pulled("resume")
    if not run.config_path.exists():
        raise ValueError(f"cannot resume {run.name!r}: {run.config_path} does not exist")
    if run.status_path.exists():
        state = run.state()["state"]
        if state in ("queued", "running"):
            raise ValueError(f"cannot resume {run.name!r}: it is {state} (pid {run.read_status().get('pid')}); "
                             f"wait for it to end or cancel it first (`maskcls jobs cancel {run.name}`)")
    if run.is_locked():
        raise ValueError(f"cannot resume {run.name!r}: another process is training it right now")
