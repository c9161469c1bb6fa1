"""Evaluate page: confusion and F1, the errors of one (true, predicted) cell with Grad-CAM, likely label errors."""
import numpy as np
import streamlit as st

import ui
from maskcls import charts
from maskcls.cam import compute_cam, list_cam_methods, overlay
from maskcls.corrections import to_csv_text
from maskcls.ensemble import build_model
from maskcls.evaluation import cell_errors, find_label_errors, report, run_predictions, save_bias, \
    suspects_to_corrections, tune_biases
from maskcls.imageio import ImageError, thumbnail
from maskcls.labels import attribute_names, class_names
from maskcls.metrics import attribute_of
from maskcls.pipelines import load_preprocessed
from maskcls.rundir import CheckpointError, RunDir, list_runs, load_checkpoint, probs_of
from maskcls.config import RunConfig

PAGE = 12


@st.cache_data(max_entries=16, show_spinner="Loading predictions…")
def predictions(runs_root: str, name: str, checkpoint: str, stamp: float):
    return run_predictions(runs_root, name, checkpoint)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def model_for(runs_root: str, name: str, checkpoint: str, stamp: float):
    ckpt = load_checkpoint(RunDir(runs_root, name).checkpoint(checkpoint))
    cfg = RunConfig.from_dict(ckpt["config"])
    return build_model(ckpt, cfg, f"{name}:{checkpoint}"), cfg


st.title("Evaluate")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]
runs = [r for r in list_runs(runs_root) if r.list_checkpoints()]
if not runs:
    st.info("No run with a checkpoint yet: train one on the Train page.")
    st.stop()
c = st.columns([2, 1, 1])
name = c[0].selectbox("Run", [r.name for r in runs], key="eval_run")
run = RunDir(runs_root, name)
checkpoint = c[1].selectbox("Checkpoint", run.list_checkpoints(), key="eval_ckpt")
normalise = c[2].toggle("Row-normalised", key="eval_norm")
stamp = (run.path / checkpoint).stat().st_mtime
try:
    preds = predictions(runs_root, name, checkpoint, stamp)
except (ValueError, CheckpointError, OSError) as e:
    st.error(f"Cannot evaluate {name}/{checkpoint}: {e}")
    st.stop()

r = report(preds)
names = class_names()
m = st.columns(4)
m[0].metric("Macro F1", f"{r['macro_f1']:.4f}")
m[1].metric("Accuracy", f"{r['accuracy']:.4f}")
m[2].metric("Validation images", f"{len(preds):,}")
m[3].metric("People", f"{preds['person_id'].nunique():,}")

left, right = st.columns([3, 2])
short = [str(i) for i in range(18)]
event = left.plotly_chart(charts.confusion_figure(r["confusion"], short, normalise, "Confusion (click a cell)"),
                          width="stretch", on_select="rerun", selection_mode="points", key="eval_cm")
right.plotly_chart(charts.per_class_f1_figure(r["per_class"], names), width="stretch")
cols = st.columns(3)
for col, (attr, labels) in zip(cols, attribute_names().items()):
    a = r["attributes"][attr]
    col.plotly_chart(charts.confusion_figure(a["confusion"], list(labels), normalise,
                                             f"{attr}: acc {a['accuracy']:.3f}, F1 {a['macro_f1']:.3f}"),
                     width="stretch")

points = (event or {}).get("selection", {}).get("points", []) if event else []
if points:
    st.session_state["eval_true"], st.session_state["eval_pred"] = int(points[0]["y"]), int(points[0]["x"])

st.subheader("Errors of one cell")
s = st.columns([2, 2, 1])
true = s[0].selectbox("True class", range(18), format_func=lambda i: f"{i}: {names[i]}", key="eval_true")
pred = s[1].selectbox("Predicted class", range(18), format_func=lambda i: f"{i}: {names[i]}", key="eval_pred")
cell = cell_errors(preds, true, pred)
if cell.empty:
    st.write("No image in this cell.")
else:
    pages = (len(cell) + PAGE - 1) // PAGE
    page = s[2].number_input(f"Page (of {pages})", 1, pages, 1, key="eval_page") - 1
    shown = cell.iloc[page * PAGE:(page + 1) * PAGE]
    thumbs, captions = [], []
    for row in shown.itertuples():
        try:
            thumbs.append(thumbnail(row.path, 128))
            captions.append(f"#{row.Index} p={row.probability:.2f} · {row.person_id}")
        except ImageError as e:
            st.warning(f"Skipped {row.path}: {e.reason}")
    if thumbs:
        st.image(thumbs, caption=captions, width=128)
    g = st.columns([2, 1, 1])
    pick = g[0].selectbox("Open image", list(shown.index), format_func=lambda i: f"#{i}: {cell.at[i, 'path'].split('/')[-2]}"
                          f"/{cell.at[i, 'path'].split('/')[-1]}", key="eval_open")
    method = g[1].selectbox("CAM method", list_cam_methods()[:3], key="eval_cam_method")
    show = g[2].toggle("Grad-CAM", key="eval_cam_on")
    head = "class"
    if show and RunConfig.from_dict(run.read_config()).head == "multi":
        head = st.radio("Explain", ["class", "mask", "gender", "age"], horizontal=True, key="eval_cam_head",
                        help="a three-head model: the combined 18 classes, or one head")
    if show:
        try:
            model, cfg = model_for(runs_root, name, checkpoint, stamp)
            spec = cfg.augment_spec()
            pixels = load_preprocessed(cell.at[pick, "path"], tuple(cfg.image_size), spec.crop)
            views = [pixels]
            labels_ = ["input"]
            for target, what in ((pred, "predicted"), (true, "true")):
                index_ = target if head == "class" else attribute_of([target], head)[0]
                views.append(overlay(pixels, compute_cam(model, pixels, spec, int(index_), method, head)))
                labels_.append(f"{what}: {names[target]}" + ("" if head == "class" else f" ({head} head)"))
            st.image(views, caption=labels_, width=220)
        except (ImageError, ValueError, CheckpointError) as e:
            st.error(f"Cannot show Grad-CAM: {e}")

st.subheader("Likely label errors")
people, flagged = find_label_errors(preds)
top = people.head(30)
st.dataframe(top[["person_id", "suggestion", "score", "images"]], hide_index=True, width="stretch",
             column_config={"score": st.column_config.ProgressColumn(min_value=0, max_value=1, format="%.2f")})
marked = []
by_person = preds.groupby("person_id")["path"].apply(list)
for row in top.head(8).itertuples():
    with st.expander(f"{row.person_id}: suspected {row.attribute} (score {row.score:.2f})"):
        imgs = []
        for p in sorted(by_person.get(row.person_id, [])):
            try:
                imgs.append(thumbnail(p, 96))
            except ImageError:
                pass
        if imgs:
            st.image(imgs, width=96)
        if st.checkbox("Mark as a label error", key=f"eval_mark_{row.person_id}"):
            marked.append(row.person_id)
if marked:
    st.download_button(f"Export {len(marked)} correction(s) as CSV", to_csv_text(suspects_to_corrections(people, marked)),
                       file_name="corrections.csv", mime="text/csv")

st.subheader("Macro-F1 decision tuning")
if st.button("Fit per-class biases on these validation predictions", key="eval_tune"):
    bias, before, after = tune_biases(probs_of(preds), preds["label"].to_numpy())
    save_bias(runs_root, name, bias, before, after, checkpoint)
    st.success(f"Macro F1 {before:.4f} → {after:.4f} (+{after - before:.4f}) on validation; saved with the run "
               f"(use `maskcls predict --tuned`). Fitted on the same split it is scored on, so the gain is optimistic.")
    st.bar_chart(np.round(bias, 3))
