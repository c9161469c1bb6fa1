"""Train page: a form for the whole run config, launch as a background job, live job table and curves."""
import os
import time

import pandas as pd
import streamlit as st

import ui
from maskcls.orchestration import jobs
from maskcls.augment.spec import list_presets as augment_presets, list_saved_specs, load_saved_spec
from maskcls.train.config import CHOICES, TRACKERS, ConfigError, RunConfig, create_config
from maskcls.common.devices import has_gpu, list_devices
from maskcls.models.backbones import CURATED
from maskcls.common.runfolder import RunFolder
from maskcls.common.settings import MEMBER_ENV, TEAM_ENV
from maskcls.orchestration.compare import curves_figure, eta_seconds
from maskcls.train.driver import full_data_config, room_warning

def face_crop_warning(margin: float) -> str | None:
    """The eval set's fallback rate against validation's, from the boxes already cached (nothing is detected)."""
    index = ui.current_index()
    if index is None or index.eval is None:
        return None
    from maskcls.common.settings import default_cache_dir
    from maskcls.data.faces import cached_coverage_warning
    return cached_coverage_warning(index.train["path"].tolist(), index.eval["path"].tolist(),
                                   default_cache_dir(index.root), margin)


st.title("Train")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]
devices = list_devices()
for d in devices[1:]:
    st.caption(f"🟢 {d['device']}: {d['name']}, {d['free_gb']} GiB free of {d['total_gb']} GiB")
defaults = create_config("gpu-effnet" if has_gpu() else "demo-cpu")
if st.session_state.get("train_prefill"):  # "Use the best trial's config" on the Sweeps page
    defaults = RunConfig.from_dict(st.session_state["train_prefill"])
    st.info(f"The form holds the config {st.session_state.get('train_prefill_note', 'sent here')}; keys the form does "
            f"not show come with it.")
saved = list_saved_specs(runs_root)
models = CURATED if defaults.model in CURATED else [defaults.model] + CURATED
SENT_SPEC = "the sent config's own spec"

with st.form("train_form"):
    st.subheader("New run")
    c = st.columns(4)
    model = c[0].selectbox("Model", models, index=models.index(defaults.model), key="train_model",
                           accept_new_options=True, help="Any timm model name can be typed in")
    head = c[1].selectbox("Head", CHOICES["head"], index=CHOICES["head"].index(defaults.head), key="train_head", help="multi: mask, gender and age heads")
    pretrained = c[2].checkbox("Pretrained weights", value=defaults.pretrained, key="train_pretrained")
    freeze = c[3].selectbox("Freeze", CHOICES["freeze"], index=CHOICES["freeze"].index(defaults.freeze), key="train_freeze", help="head: train only the classifier")
    c = st.columns(4)
    loss = c[0].selectbox("Loss", CHOICES["loss"], index=CHOICES["loss"].index(defaults.loss), key="train_loss")
    gamma = c[1].number_input("Focal gamma", 0.0, 10.0, defaults.focal_gamma, key="train_gamma")
    smoothing = c[2].number_input("Label smoothing", 0.0, 0.5, defaults.smoothing, key="train_smoothing")
    sampler = c[3].selectbox("Sampler", CHOICES["sampler"], index=CHOICES["sampler"].index(defaults.sampler), key="train_sampler",
                             help="inverse-frequency sampling over the classes or one attribute")
    c = st.columns(4)
    optimizer = c[0].selectbox("Optimizer", CHOICES["optimizer"], index=CHOICES["optimizer"].index(defaults.optimizer), key="train_optimizer")
    lr = c[1].number_input("Learning rate", value=defaults.lr, format="%.5f", key="train_lr")
    weight_decay = c[2].number_input("Weight decay", value=defaults.weight_decay, format="%.5f", key="train_wd")
    scheduler = c[3].selectbox("Scheduler", CHOICES["scheduler"], index=CHOICES["scheduler"].index(defaults.scheduler), key="train_scheduler")
    c = st.columns(4)
    epochs = c[0].number_input("Epochs", value=defaults.epochs, step=1, key="train_epochs")
    batch = c[1].number_input("Batch size", value=defaults.batch_size, step=8, key="train_batch")
    height = c[2].number_input("Image height", value=defaults.image_size[0], step=16, key="train_h")
    width = c[3].number_input("Image width", value=defaults.image_size[1], step=16, key="train_w")
    c = st.columns(4)
    aug_options = augment_presets() + [f"saved: {n}" for n in saved]
    if isinstance(defaults.augment, dict):
        aug_options.append(SENT_SPEC)
    chosen = st.session_state.get("train_augment")
    aug_index = (aug_options.index(f"saved: {chosen}") if chosen in saved else
                 aug_options.index(SENT_SPEC if isinstance(defaults.augment, dict) else defaults.augment))
    augment = c[0].selectbox("Augmentation", aug_options, index=aug_index, key="train_aug")
    val_ratio = c[1].number_input("Validation share (people)", 0.05, 0.5, defaults.val_ratio, key="train_val")
    split_seed = c[2].number_input("Split seed", value=defaults.split_seed, step=1, key="train_split_seed")
    seed = c[3].number_input("Seed", value=defaults.seed, step=1, key="train_seed")
    c = st.columns(4)
    device = c[0].selectbox("Device", [d["device"] for d in devices], index=len(devices) - 1, key="train_device")
    name = c[1].text_input("Run name", value=f"{model}-{time.strftime('%m%d-%H%M%S')}", key="train_name")
    class_weights = c[2].checkbox("Class weights in the loss", key="train_cw")
    ema = c[3].number_input("EMA decay (0 = off)", 0.0, 0.9999, 0.0, format="%.4f", key="train_ema")
    c = st.columns(4)
    folds = c[1].number_input("K folds (0 = one split)", 0, 20, 0, step=1, key="train_folds",
                              help="K >= 2: train K person-level folds as runs NAME-fold1..K, queued one after another; "
                                   "the last writes NAME-oof.csv (every training image predicted out of fold)")
    borderline = c[0].number_input("Drop borderline ages (years)", 0, 10, defaults.drop_borderline, step=1,
                                   key="train_borderline",
                                   help="Train without people this many years below each age bound (3: ages 27-29 "
                                        "and 57-59, as the winning team did); validation keeps them")
    face = c[2].checkbox("Face crop (MTCNN)", value=defaults.face_crop, key="train_face",
                         help="Cut each image to its face box before resizing, in training, evaluation, prediction "
                              "and Grad-CAM (boxes found once and cached; see the Data page)")
    margin = c[3].number_input("Face margin", 0.0, 1.0, float(defaults.face_margin), 0.05, key="train_face_margin",
                               help="share of the face box added on each side")
    remove_bg = c[0].checkbox("Remove the background", value=defaults.remove_background, key="train_bg",
                              help="GrabCut greys out the background before the crop (the second-place team's step); "
                                   "about 0.1-0.2 s per image once, when the decoded-image cache is built")
    c = st.columns(4)
    team = c[3].checkbox("Push to the team store", value=defaults.team, key="train_team",
                         disabled=not os.environ.get(TEAM_ENV),
                         help=f"when the run completes, send it to the team store ({TEAM_ENV}, as {MEMBER_ENV}); "
                              f"set both before starting the studio")
    track = [t for t, col in zip(TRACKERS, c) if col.checkbox(
        {"tensorboard": "TensorBoard", "mlflow": "MLflow", "wandb": "W&B"}[t], value=t in defaults.track,
        key=f"train_track_{t}", help={"tensorboard": "event files in the run folder: tensorboard --logdir <runs root>",
                                      "mlflow": "MLFLOW_TRACKING_URI, else SQLite in <runs root>/mlflow/",
                                      "wandb": "online when logged in, else offline files in the run folder"}[t])]
    crop_warning = face_crop_warning(float(defaults.face_margin))
    if crop_warning:
        st.warning(f"Face crop: {crop_warning}. The photos without a face box get the whole frame, in training too, "
                   f"so the model learns both; compare the crop on the eval set before trusting its validation score.",
                   icon=":material/face:")
    b = st.columns([1, 1, 1, 1, 2])
    submitted = b[0].form_submit_button("Launch", icon=":material/rocket_launch:", type="primary")
    to_sweep = b[1].form_submit_button("Use as sweep base", icon=":material/tune:",
                                       help="Open the Sweeps page with this form's values as the base config")
    n_seeds = b[2].number_input("Seeds", 2, 20, 3, step=1, key="train_seeds", label_visibility="collapsed",
                                help="How many seeds a repeat trains")
    repeat = b[3].form_submit_button("Repeat with N seeds", icon=":material/repeat:", key="train_repeat",
                                     help="Runs NAME-s1..N of this config with seeds 1..N on the same split: the Runs "
                                          "page shows them as one row (mean, spread, interval) you can compare")

if submitted or to_sweep or repeat:
    try:
        spec = (load_saved_spec(runs_root, augment[len("saved: "):]).to_dict() if augment.startswith("saved: ") else
                defaults.augment if augment == SENT_SPEC else augment)
        cfg = RunConfig.from_dict({
            **defaults.to_dict(), "data_root": ui.data_root(), "corrections": st.session_state["corrections"],
            "age_lower": int(st.session_state["age_lower"]), "age_upper": int(st.session_state["age_upper"]),
            "model": model, "head": head, "pretrained": pretrained, "freeze": freeze, "loss": loss,
            "focal_gamma": float(gamma), "smoothing": float(smoothing), "sampler": sampler, "optimizer": optimizer,
            "lr": float(lr), "weight_decay": float(weight_decay), "scheduler": scheduler, "epochs": int(epochs),
            "batch_size": int(batch), "image_size": [int(height), int(width)], "augment": spec,
            "val_ratio": float(val_ratio), "split_seed": int(split_seed), "seed": int(seed), "device": device,
            "class_weights": class_weights, "ema": float(ema), "drop_borderline": int(borderline),
            "face_crop": bool(face), "face_margin": float(margin), "remove_background": bool(remove_bg),
            "track": track, "team": bool(team)})
        room = room_warning(cfg, runs_root) if not to_sweep else None
        if room:
            st.warning(f"Disk: {room}")
        if to_sweep:
            st.session_state["sweep_base"] = cfg.to_dict()
            st.switch_page(str(ui.REPO / "pages" / "sweeps.py"))
        if repeat:
            from maskcls.orchestration.repeats import submit_repeats
            launched = submit_repeats(cfg, runs_root, name, int(n_seeds))
            st.session_state["train_selected"] = launched[0]
            st.success(f"Queued {len(launched)} seeds on {device}: {', '.join(launched)}; the Runs page shows them as "
                       f"the repeat group {name}.")
        elif folds:
            launched = jobs.submit_folds(cfg, runs_root, name, int(folds))
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


@st.fragment(run_every=2.0)
def live_jobs() -> None:
    """Refreshes by itself every 2 s; the form above is untouched."""
    infos = jobs.list_jobs(runs_root)
    if not infos:
        st.info("No jobs yet: launch one above.")
        return
    table = pd.DataFrame([{
        "name": j.name, "state": j.state, "progress": j.progress, "epoch": f"{j.epoch}/{j.epochs}",
        "ETA": f"{eta_seconds(j):.0f} s" if eta_seconds(j) is not None else "",
        "best F1": j.best_f1, "device": j.device, "error": j.error or ""} for j in infos])
    st.dataframe(table, hide_index=True, width="stretch", key="train_jobs_table",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
                                "best F1": st.column_config.NumberColumn(format="%.4f")})
    names = [j.name for j in infos]
    current = st.session_state.get("train_selected")
    pick = st.selectbox("Job", names, index=names.index(current) if current in names else 0, key="train_pick")
    st.session_state["train_selected"] = pick
    info = next(j for j in infos if j.name == pick)
    eta = eta_seconds(info)
    st.markdown(f"**{pick}**: `{info.state}` · epoch {info.epoch}/{info.epochs} · {100 * info.progress:.0f}%"
                + (f" · ETA {eta:.0f} s" if eta is not None else "")
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
