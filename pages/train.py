"""Train page: start from a preset or any finished run's config, adjust what matters (fields for what is chosen
only), see how long it will take, launch it as a background job (or N seeds, or K folds); the live job table."""
import os
import time

import pandas as pd
import streamlit as st

import ui
from maskcls.augment.spec import list_presets as augment_presets, list_saved_specs, load_saved_spec
from maskcls.common.devices import has_gpu, list_devices
from maskcls.common.runfolder import RunFolder
from maskcls.common.settings import MEMBER_ENV, TEAM_ENV
from maskcls.models.backbones import CURATED
from maskcls.orchestration import jobs
from maskcls.orchestration.compare import curves_figure, eta_seconds
from maskcls.orchestration.estimate import duration_text, estimate_many, estimate_run
from maskcls.orchestration.run_index import index_rows
from maskcls.train.config import CHOICES, PRESETS, TRACKERS, ConfigError, RunConfig, create_config
from maskcls.train.driver import full_data_config, room_warning

SENT_SPEC = "the loaded config's own spec"
RUN_PREFIX = "run: "
# widget key -> config key: what the form shows (everything else comes from the config it started from)
FIELDS = {"train_model": "model", "train_head": "head", "train_pretrained": "pretrained",
          "train_weights": "weights_file", "train_freeze": "freeze", "train_unfreeze": "unfreeze_after",
          "train_loss": "loss", "train_gamma": "focal_gamma", "train_smoothing": "smoothing",
          "train_sampler": "sampler",
          "train_cw": "class_weights", "train_optimizer": "optimizer", "train_momentum": "momentum", "train_lr": "lr",
          "train_wd": "weight_decay", "train_scheduler": "scheduler", "train_step_size": "step_size",
          "train_step_gamma": "step_gamma", "train_warmup": "warmup_epochs", "train_epochs": "epochs",
          "train_batch": "batch_size", "train_val": "val_ratio", "train_split_seed": "split_seed", "train_seed": "seed",
          "train_borderline": "drop_borderline", "train_face": "face_crop", "train_face_margin": "face_margin",
          "train_face_borrow": "face_borrow", "train_bg": "remove_background", "train_ema": "ema",
          "train_team": "team"}


def face_crop_warning(margin: float) -> str | None:
    """The eval set's fallback rate against validation's, from the boxes already cached (nothing is detected)."""
    index = ui.current_index()
    if index is None or index.eval is None:
        return None
    from maskcls.common.settings import default_cache_dir
    from maskcls.data.faces import cached_coverage_warning
    return cached_coverage_warning(index.train["path"].tolist(), index.eval["path"].tolist(),
                                   default_cache_dir(index.root), margin)


def form_values(cfg: RunConfig) -> dict:
    """The form's widget values for a config (and the config itself, for the keys the form does not show)."""
    from typing import get_type_hints
    d = cfg.to_dict()
    hints = get_type_hints(RunConfig)
    vals = {k: {float: float, int: int}.get(hints[c], lambda v: v)(d[c]) for k, c in FIELDS.items()}
    vals.update(train_h=int(cfg.image_size[0]), train_w=int(cfg.image_size[1]),
                train_aug=cfg.augment if isinstance(cfg.augment, str) else SENT_SPEC,
                train_combo_ce=float(cfg.combo.get("ce", 1.0)), train_combo_f1=float(cfg.combo.get("f1", 1.0)),
                **{f"train_track_{t}": t in cfg.track for t in TRACKERS}, _base=d)
    return vals


def load_into_form(cfg: RunConfig, note: str) -> None:
    vals = form_values(cfg)
    st.session_state["train_values"] = vals
    for k, v in vals.items():
        if not k.startswith("_"):
            st.session_state[k] = v
    st.session_state["train_loaded_note"] = note


def start_options() -> list[str]:
    done = [r["name"] for r in index_rows(runs_root) if r["state"] in ("completed", "pruned") and r.get("model")]
    return list(PRESETS) + [RUN_PREFIX + n for n in done]


def apply_start() -> None:
    """The "Start from" choice: a preset's config or a finished run's own config (a teammate's pulled run too)."""
    pick = st.session_state["train_start"]
    try:
        if pick.startswith(RUN_PREFIX):
            from maskcls.train.config import run_config
            cfg = run_config(RunFolder.open(runs_root, pick[len(RUN_PREFIX):]))
            cfg = RunConfig.from_dict({**cfg.to_dict(), "full_data": False, "fold": -1, "team": False})
        else:
            cfg = create_config(pick)
        load_into_form(cfg, f"from {pick}")
        st.session_state["train_loaded_sent"] = False
    except (ValueError, OSError) as e:
        st.session_state["train_start_error"] = f"Cannot start from {pick}: {e}"


st.title("Train")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]
devices = list_devices()
for d in devices[1:]:
    st.caption(f"🟢 {d['device']}: {d['name']}, {d['free_gb']} GiB free of {d['total_gb']} GiB")
default_preset = "gpu-effnet" if has_gpu() else "demo-cpu"  # on CUDA: pretrained weights, the GPU recipe
sent = st.session_state.get("train_prefill")  # "Use the best trial's config" on the Sweeps page
if sent and st.session_state.get("train_prefill_applied") != sent:
    load_into_form(RunConfig.from_dict(sent), st.session_state.get("train_prefill_note", "sent here"))
    st.session_state["train_prefill_applied"] = sent
    st.session_state["train_loaded_sent"] = True
if "train_values" not in st.session_state:
    load_into_form(create_config(default_preset), f"from the {default_preset} preset (this device's default)")
vals = st.session_state["train_values"]
for k, v in vals.items():  # values kept for the session: a visit to another page does not reset the form
    if not k.startswith("_") and k not in st.session_state:
        st.session_state[k] = v
if st.session_state.get("train_augment") in list_saved_specs(runs_root):  # "Use for training" on the Augment page
    st.session_state["train_aug"] = f"saved: {st.session_state.pop('train_augment')}"
base = vals["_base"]

c = st.columns([2, 3])
options = start_options()
c[0].selectbox("Start from", options, index=None, key="train_start", on_change=apply_start,
               placeholder="a preset or a finished run's config",
               help="demo-cpu: minutes on a 2-core CPU; gpu-effnet: the GPU recipe; winners-2022: the winners' "
                    "steps; or any finished run here (a teammate's pulled run too): its whole config")
(c[1].info if st.session_state.get("train_loaded_sent") else c[1].caption)(
    f"The form holds the config {st.session_state.get('train_loaded_note', '')}; keys it does not show come with it "
    f"(`maskcls config keys` lists them all).")
if err := st.session_state.pop("train_start_error", None):
    st.error(err)

st.subheader("Model")
c = st.columns(4)
models = list(dict.fromkeys([st.session_state["train_model"]] + CURATED))
model = c[0].selectbox("Model", models, key="train_model", accept_new_options=True,
                       help="Any timm model name can be typed in")
c[1].selectbox("Head", CHOICES["head"], key="train_head", help="multi: mask, gender and age heads")
pretrained = c[2].checkbox("Pretrained weights", key="train_pretrained",
                           help="from the Hugging Face hub when online; offline: random init with a warning, or a "
                                "local weights file")
c[3].text_input("Local weights file", key="train_weights", placeholder="/path/model.safetensors (optional)",
                help="backbone weights from a file (.pth or .safetensors): overrides the hub")
c = st.columns(4)
freeze = c[0].selectbox("Freeze", CHOICES["freeze"], key="train_freeze", help="head: train only the classifier")
if freeze == "head":
    c[1].number_input("Unfreeze after (epochs, 0 = never)", 0, 500, step=1, key="train_unfreeze")
c[2].number_input("Image height", min_value=16, step=16, key="train_h")
c[3].number_input("Image width", min_value=16, step=16, key="train_w")

st.subheader("Loss and sampling")
c = st.columns(4)
loss = c[0].selectbox("Loss", CHOICES["loss"], key="train_loss")
if loss == "focal":
    c[1].number_input("Focal gamma", 0.0, 10.0, key="train_gamma")
if loss in ("smooth", "combo"):
    c[1].number_input("Label smoothing", 0.0, 0.5, key="train_smoothing")
if loss == "combo":
    c[2].number_input("CE weight", 0.0, 10.0, key="train_combo_ce")
    c[3].number_input("F1 weight", 0.0, 10.0, key="train_combo_f1")
c = st.columns(4)
c[0].selectbox("Sampler", CHOICES["sampler"], key="train_sampler",
               help="inverse-frequency sampling over the classes or one attribute")
c[1].checkbox("Class weights in the loss", key="train_cw")
c[2].number_input("Drop borderline ages (years)", 0, 10, step=1, key="train_borderline",
                  help="Train without people this many years below each age bound (3: ages 27-29 and 57-59, as the "
                       "winning team did); validation keeps them")

st.subheader("Optimisation")
c = st.columns(4)
optimizer = c[0].selectbox("Optimizer", CHOICES["optimizer"], key="train_optimizer")
c[1].number_input("Learning rate", format="%.5f", key="train_lr")
c[2].number_input("Weight decay", format="%.5f", key="train_wd")
if optimizer == "sgd":
    c[3].number_input("Momentum", 0.0, 0.999, key="train_momentum")
c = st.columns(4)
scheduler = c[0].selectbox("Scheduler", CHOICES["scheduler"], key="train_scheduler")
c[1].number_input("Warm-up epochs", 0.0, 100.0, key="train_warmup")
if scheduler == "step":
    c[2].number_input("Step every (epochs)", 1, 500, step=1, key="train_step_size")
    c[3].number_input("Step factor", 0.01, 1.0, key="train_step_gamma")
c = st.columns(4)
c[0].number_input("Epochs", step=1, key="train_epochs")
c[1].number_input("Batch size", step=8, key="train_batch")
c[2].number_input("EMA decay (0 = off)", 0.0, 0.9999, format="%.4f", key="train_ema")
device = c[3].selectbox("Device", [d["device"] for d in devices], index=len(devices) - 1, key="train_device")

st.subheader("Data and augmentation")
c = st.columns(4)
saved = list_saved_specs(runs_root)
aug_options = augment_presets() + [f"saved: {n}" for n in saved] + (
    [SENT_SPEC] if isinstance(base.get("augment"), dict) else [])
if st.session_state.get("train_aug") not in aug_options:
    st.session_state["train_aug"] = aug_options[0]
augment = c[0].selectbox("Augmentation", aug_options, key="train_aug")
c[1].number_input("Validation share (people)", 0.05, 0.5, key="train_val")
c[2].number_input("Split seed", step=1, key="train_split_seed")
c[3].number_input("Seed", step=1, key="train_seed")
c = st.columns(4)
face = c[0].checkbox("Face crop (MTCNN)", key="train_face",
                     help="Cut each image to its face box before resizing, in training, evaluation, prediction and "
                          "Grad-CAM (boxes found once and cached; see the Data page)")
if face:
    c[1].number_input("Face margin", 0.0, 1.0, step=0.05, key="train_face_margin",
                      help="share of the face box added on each side")
    c[2].checkbox("Borrow a box (training)", key="train_face_borrow",
                  help="training photos without a face take their person's box (eval photos cannot)")
c[3].checkbox("Remove the background", key="train_bg",
              help="GrabCut greys out the background before the crop (the second-place team's step); about "
                   "0.1-0.2 s per image once, when the decoded-image cache is built")
if face and (warning := face_crop_warning(float(st.session_state["train_face_margin"]))):
    st.warning(f"Face crop: {warning}. The photos without a face box get the whole frame, in training too, so the "
               f"model learns both; compare the crop on the eval set before trusting its validation score.",
               icon=":material/face:")

st.subheader("Tracking")
c = st.columns(4)
c[0].checkbox("Push to the team store", key="train_team", disabled=not os.environ.get(TEAM_ENV),
              help=f"when the run completes, send it to the team store ({TEAM_ENV}, as {MEMBER_ENV}); set both "
                   f"before starting the studio")
track = [t for t, col in zip(TRACKERS, c[1:]) if col.checkbox(
    {"tensorboard": "TensorBoard", "mlflow": "MLflow", "wandb": "W&B"}[t], key=f"train_track_{t}",
    help={"tensorboard": "event files in the run folder: tensorboard --logdir <runs root>",
          "mlflow": "MLFLOW_TRACKING_URI, else SQLite in <runs root>/mlflow/",
          "wandb": "online when logged in, else offline files in the run folder"}[t])]

st.session_state["train_values"] = {**vals, **{k: st.session_state[k] for k in vals
                                                if not k.startswith("_") and k in st.session_state}}


def form_config() -> RunConfig:
    """The config the form says: the loaded config, the shown fields, the sidebar's data settings."""
    s = st.session_state
    spec = (load_saved_spec(runs_root, augment[len("saved: "):]).to_dict() if augment.startswith("saved: ") else
            base["augment"] if augment == SENT_SPEC else augment)
    d = {**base, **{c: s[k] for k, c in FIELDS.items() if k in s}}
    d.update(data_root=ui.data_root(), corrections=s["corrections"], age_lower=int(s["age_lower"]),
             age_upper=int(s["age_upper"]), image_size=[int(s["train_h"]), int(s["train_w"])], augment=spec,
             device=device, track=track, combo={"ce": float(s["train_combo_ce"]), "f1": float(s["train_combo_f1"])},
             weights_file=s["train_weights"].strip(), epochs=int(s["train_epochs"]), batch_size=int(s["train_batch"]))
    for k in ("lr", "weight_decay", "focal_gamma", "smoothing", "val_ratio", "ema", "face_margin", "momentum",
              "step_gamma", "warmup_epochs"):
        d[k] = float(d[k])
    for k in ("split_seed", "seed", "drop_borderline", "unfreeze_after", "step_size"):
        d[k] = int(d[k])
    if d["weights_file"] and not os.path.isfile(os.path.expanduser(d["weights_file"])):
        raise ConfigError(f"weights_file {d['weights_file']!r}: no such file (expected a .pth or .safetensors "
                          f"backbone weights file on this machine)")
    return RunConfig.from_dict(d)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_estimate(cfg_json: str, runs: int, stamp: float, probe: bool):
    cfg = RunConfig.from_json(cfg_json)
    return estimate_many([cfg] * runs, runs_root, probe=probe) if runs > 1 else estimate_run(cfg, runs_root,
                                                                                             probe=probe)


st.subheader("Launch")
try:
    cfg = form_config()
    st.session_state["train_config"] = cfg.to_dict()  # the base the Ladders and Sweeps pages start from
    config_error = None
except (ConfigError, ValueError) as e:
    cfg, config_error = None, str(e)
c = st.columns([2, 1, 1, 1])
name = c[0].text_input("Run name (or group name)", value=f"{model}-{time.strftime('%m%d-%H%M%S')}", key="train_name")
n_folds = c[1].number_input("K folds (0 = one split)", 0, 20, 0, step=1, key="train_folds",
                            help="K >= 2: K person-level folds as runs NAME-fold1..K, queued one after another; the "
                                 "last writes NAME-oof.csv (every training image predicted out of fold)")
n_seeds = c[2].number_input("Seeds", 2, 20, 3, step=1, key="train_seeds",
                            help="how many seeds **Repeat with N seeds** trains (runs NAME-s1..N on one split)")
b = st.columns([1, 1.4, 1.2, 1.2])
submitted = b[0].button("Launch", icon=":material/rocket_launch:", type="primary", key="train_launch",
                        width="stretch")
repeat = b[1].button(f"Repeat with {int(n_seeds)} seeds", icon=":material/repeat:", key="train_repeat",
                     width="stretch", help="Runs NAME-s1..N of this config with seeds 1..N on the same split: "
                                                    "the Runs page shows them as one row (mean, spread, interval)")
to_sweep = b[2].button("Use as sweep base", icon=":material/tune:", key="train_to_sweep", width="stretch",
                       help="Open the Sweeps page with this form's values as the base config")
to_ladder = b[3].button("Use as ladder base", icon=":material/stairs:", key="train_to_ladder",
                        width="stretch", help="Open the Ladders page with this form's values as the base")
if config_error:
    st.error(f"Not ready to launch: {config_error}")
else:
    stamp = os.path.getmtime(os.path.join(runs_root, ".throughput.json")) if os.path.exists(
        os.path.join(runs_root, ".throughput.json")) else 0.0
    count = max(int(n_folds), 1)
    try:
        estimate = cached_estimate(cfg.to_json(), count, stamp, st.session_state.get("train_probed") == cfg.to_json())
    except (ValueError, OSError) as e:
        estimate = None
        st.caption(f"No time estimate: {e}")
    if estimate is not None:
        per = f" ({duration_text(estimate.seconds / count)} a fold)" if count > 1 else ""
        st.info(f"Estimated time on {device}: **{duration_text(estimate.seconds)}**{per}; a repeat of "
                f"{int(n_seeds)} seeds about {duration_text(estimate.seconds / count * int(n_seeds))}. "
                f"From {estimate.how}.", icon=":material/timer:")
    elif st.button("Estimate the time (a few seconds: trains a few batches)", key="train_probe"):
        st.session_state["train_probed"] = cfg.to_json()
        st.rerun()
    else:
        st.caption("No run of this model at this size has trained on this device here yet: no measured speed to "
                   "estimate from.")

if (submitted or to_sweep or repeat or to_ladder) and cfg is not None:
    try:
        room = room_warning(cfg, runs_root) if not (to_sweep or to_ladder) else None
        if room:
            st.warning(f"Disk: {room}")
        if to_sweep:
            st.session_state["sweep_base"] = cfg.to_dict()
            st.switch_page(str(ui.REPO / "pages" / "sweeps.py"))
        if to_ladder:
            st.session_state["ladder_base"] = cfg.to_dict()
            st.switch_page(str(ui.REPO / "pages" / "ladders.py"))
        if repeat:
            from maskcls.orchestration.repeats import submit_repeats
            launched = submit_repeats(cfg, runs_root, name, int(n_seeds))
            st.session_state["train_selected"] = launched[0]
            st.success(f"Queued {len(launched)} seeds on {device}: {', '.join(launched)}; the Runs page shows them as "
                       f"the repeat group {name}.")
        elif n_folds:
            launched = jobs.submit_folds(cfg, runs_root, name, int(n_folds))
            st.session_state["train_selected"] = launched[0]
            st.success(f"Queued {len(launched)} folds on {device}: {', '.join(launched)}; the out-of-fold table "
                       f"{name}-oof.csv appears when the last one ends (Evaluate and Ensemble pages use it).")
        else:
            again = st.session_state.get("train_launched", {}).get(name) == cfg.to_json()
            if again and RunFolder(runs_root, name).exists():  # a second click of Launch: one run, said so
                state = jobs.job_info(RunFolder(runs_root, name)).state
                st.info(f"**{name}** is already launched from this page ({state}): one click is enough; it is in the "
                        f"jobs table below.")
            else:
                run = jobs.submit(cfg, runs_root, name)
                st.session_state.setdefault("train_launched", {})[name] = cfg.to_json()
                st.session_state["train_selected"] = run.name
                st.success(f"Launched **{run.name}** on {device}.")
    except (ConfigError, ValueError) as e:
        st.error(f"Not launched: {e}")
elif submitted or repeat:
    st.error(f"Not launched: {config_error}")


@st.fragment(run_every=2.0)
def live_jobs() -> None:
    """Refreshes by itself every 2 s; the form above is untouched."""
    infos = jobs.list_jobs(runs_root)
    if not infos:
        st.info("No jobs yet: launch one above.")
        return
    table = pd.DataFrame([{
        "name": j.name, "state": j.state, "progress": j.progress, "epoch": f"{j.epoch}/{j.epochs}",
        "stage": (j.stage or "") if j.state == "running" else "",
        "img/s": j.images_per_s if j.state == "running" else None,
        "ETA": duration_text(eta_seconds(j)) if eta_seconds(j) is not None else "",
        "best F1": j.best_f1, "device": j.device, "error": j.error or ""} for j in infos])
    st.dataframe(table, hide_index=True, width="stretch", key="train_jobs_table",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
                                "img/s": st.column_config.NumberColumn(format="%.0f"),
                                "best F1": st.column_config.NumberColumn(format="%.4f")})
    names = [j.name for j in infos]
    current = st.session_state.get("train_selected")
    pick = st.selectbox("Job", names, index=names.index(current) if current in names else 0, key="train_pick")
    st.session_state["train_selected"] = pick
    info = next(j for j in infos if j.name == pick)
    eta = eta_seconds(info)
    st.markdown(f"**{pick}**: `{info.state}` · epoch {info.epoch}/{info.epochs} · {100 * info.progress:.0f}%"
                + (f" · {info.stage}" if info.stage and info.state == "running" else "")
                + (f" · {info.images_per_s:.0f} img/s" if info.images_per_s and info.state == "running" else "")
                + (f" · ETA {duration_text(eta)}" if eta is not None else "")
                + (f" · best macro F1 {info.best_f1:.4f}" if info.best_f1 is not None else ""))
    st.progress(min(1.0, info.progress))
    if info.state == "completed" and not RunFolder(runs_root, pick).read_config().get("full_data"):
        if st.button(f"Retrain {pick} on all data", key="train_full", icon=":material/all_inclusive:",
                     help="Its config on training + validation people for its best epoch count; no validation, the "
                          "last epoch is the model (the winners' last step before submitting)"):
            try:
                full = jobs.submit(full_data_config(RunFolder(runs_root, pick)), runs_root, f"{pick}-full")
                st.session_state["train_selected"] = full.name
                st.toast(f"{full.name} launched ({full.read_config()['epochs']} epochs on all data)")
            except (ConfigError, ValueError) as e:
                st.error(str(e))
    if info.state in ("queued", "running") and st.button(f"Cancel {pick}", key="train_cancel"):
        try:
            cancelled = jobs.cancel(runs_root, pick)
            st.toast(f"{pick}: {cancelled.state}")
            for note in cancelled.notes:
                st.warning(note)
        except ValueError as e:
            st.error(str(e))
    st.plotly_chart(curves_figure(runs_root, [pick]), width="stretch", key="train_curves")
    with st.expander("Log", expanded=info.state == "failed"):
        st.code(RunFolder(runs_root, pick).log_tail(30) or "(empty)", language=None)


st.subheader("Jobs")
live_jobs()
