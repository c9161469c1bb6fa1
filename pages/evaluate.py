"""Evaluate page: confusion and F1, the errors of one (true, predicted) cell with Grad-CAM, likely label errors."""
import numpy as np
import streamlit as st

import ui
from maskcls.wrapup import charts
from maskcls.models.cam import explain_image, list_cam_methods
from maskcls.data.corrections import reviewed_ids
from maskcls.common.fileio import LIMITS, read_text_file
from maskcls.infer.members import build_model
from maskcls.infer.evaluation import cell_errors, eval_people, largest_error_cell, prediction_intervals, report, validation_predictions, save_bias, tune_biases
from maskcls.infer.review import NEIGHBOURS, person_probabilities
from maskcls.orchestration import reviews
from maskcls.data.imageio import ImageError, resolve_image, thumbnail
from maskcls.train.intervals import selection_lines
from maskcls.data.labels import attribute_names, class_names, short_class_names
from maskcls.common.runfolder import RunFolder, probs_of
from maskcls.orchestration.run_index import index_rows
from maskcls.common.checkpoints import CheckpointError, load_checkpoint
from maskcls.train.config import RunConfig, run_config
from maskcls.orchestration.folds import crossfit_bias, fold_runs, list_oof, oof_path, read_oof, save_fold_bias

PAGE = 12


@st.cache_data(max_entries=16, show_spinner="Loading predictions…")
def predictions(runs_root: str, name: str, checkpoint: str, stamp: float):
    return validation_predictions(runs_root, name, checkpoint)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def model_for(runs_root: str, name: str, checkpoint: str, stamp: float):
    ckpt = load_checkpoint(RunFolder(runs_root, name).checkpoint(checkpoint))
    cfg = RunConfig.from_dict(ckpt["config"])
    return build_model(ckpt, cfg, f"{name}:{checkpoint}"), cfg


@st.cache_data(max_entries=8, show_spinner="Loading the out-of-fold table…")
def oof_predictions(runs_root: str, group: str, stamp: float):
    frame = read_oof(runs_root, group)
    frame.attrs["source"] = (f"{group}-oof.csv: every training image, each predicted by the fold run that did not "
                             f"train on it ({frame['fold'].nunique()} folds)")
    return frame


@st.cache_data(max_entries=16, show_spinner="Resampling people…")
def intervals(runs_root: str, ref: str, checkpoint: str, is_group: bool, stamp: float) -> dict:
    """The interval figures: stored with the run at its best epoch, else computed once per file version."""
    if is_group:
        from maskcls.train.intervals import run_intervals
        return run_intervals(read_oof(runs_root, ref), eval_people=eval_people(ui.data_root()))
    return prediction_intervals(RunFolder(runs_root, ref), predictions(runs_root, ref, checkpoint, stamp))


st.title("Evaluate")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]
runs = [r for r in index_rows(runs_root) if r["checkpoints"] and "/" not in r["name"]]  # from the run index
if not runs:
    st.info("No run with a checkpoint yet: train one on the Train page.")
    st.stop()
OOF = " (out-of-fold)"
c = st.columns([2, 1, 1])
name = c[0].selectbox("Run", [r["name"] for r in runs] + [g + OOF for g in list_oof(runs_root)], key="eval_run",
                      help="A k-fold group's out-of-fold table scores every training image with a model that never "
                           "trained on it: the most credible place to hunt label errors")
group = name[:-len(OOF)] if name.endswith(OOF) else None
checkpoint = "best.pt"
try:
    if group:
        checkpoint = "best.pt"
        c[1].caption("each image scored by its own fold's best.pt")
        fold_runs(runs_root, group)  # every fold still completed (outside the cache: a fold may be resumed since)
        preds = oof_predictions(runs_root, group, oof_path(runs_root, group).stat().st_mtime)
    else:
        run = RunFolder(runs_root, name)
        checkpoint = c[1].selectbox("Checkpoint", run.list_checkpoints(), key="eval_ckpt")
        stamp = (run.path / checkpoint).stat().st_mtime
        preds = predictions(runs_root, name, checkpoint, stamp)
except (ValueError, CheckpointError, OSError) as e:
    st.error(f"Cannot evaluate {name if group else f'{name}/{checkpoint}'}: {e}")
    st.stop()
normalise = c[2].toggle("Row-normalised", key="eval_norm")
# photos are opened only inside the run's own data root (a table naming any other file shows a warning instead)
try:
    photo_root = run_config(fold_runs(runs_root, group)[0] if group else RunFolder(runs_root, name)).data_root
except ValueError as e:
    st.error(str(e))
    st.stop()
ci = intervals(runs_root, name if not group else group, checkpoint, bool(group),
               oof_path(runs_root, group).stat().st_mtime if group else stamp)
st.caption(f"Figures from {preds.attrs.get('source', 'the run')}.")
for line in selection_lines(ci):
    st.info(line[0].upper() + line[1:] + ". Expect the selection-free figure on new people.")
if "expected_test_f1" in ci:
    lo, hi = ci["expected_test_f1"]
    st.caption(f"On an unseen set of {ci['test_people']} people drawn like these, a model like this one may score "
               f"**{lo:.3f} to {hi:.3f}**; the leaderboard's public and private halves of such a set can differ by up to "
               f"{ci['public_private_gap_abs']:.3f} from chance alone, so a public-score gain smaller than that means "
               f"little. (Resampled from validation: a shift between training and test photos is not in it.)")

r = report(preds)
names, short = class_names(), short_class_names()
m = st.columns(4)
m[0].metric("Macro F1", f"{r['macro_f1']:.4f}", f"{ci['macro_f1_ci'][0]:.3f} to {ci['macro_f1_ci'][1]:.3f}",
            delta_color="off", help=f"95 % interval from resampling the {ci['people']} validation people (a person's "
                                    f"photos are not independent: people, not images, are the unit)")
m[1].metric("Accuracy", f"{r['accuracy']:.4f}")
m[2].metric("Validation images", f"{len(preds):,}")
m[3].metric("People", f"{preds['person_id'].nunique():,}")

# Every matrix is clickable: a click selects its cell for the gallery below (and the selectboxes follow).
MATRICES = {"class": names, **{k: list(v) for k, v in attribute_names().items()}}
left, right = st.columns([3, 2])
events = {"class": left.plotly_chart(
    charts.confusion_figure(r["confusion"], short, normalise, "Confusion: click a cell to see its images", names),
    width="stretch", on_select="rerun", selection_mode="points", key="eval_cm_class")}
right.plotly_chart(charts.per_class_f1_figure(r["per_class"], names, ci["per_class_f1_ci"]), width="stretch")
for col, (attr, labels) in zip(st.columns(3), attribute_names().items()):
    a = r["attributes"][attr]
    events[attr] = col.plotly_chart(charts.confusion_figure(a["confusion"], list(labels), normalise,
                                                            f"{attr}: acc {a['accuracy']:.3f}, F1 {a['macro_f1']:.3f}"),
                                    width="stretch", on_select="rerun", selection_mode="points", key=f"eval_cm_{attr}")
for matrix, event in events.items():
    cell = charts.picked_cell(event)
    if cell is not None and st.session_state.get(f"eval_seen_{matrix}") != cell:  # a new click, not an old selection
        st.session_state[f"eval_seen_{matrix}"] = cell
        st.session_state["eval_matrix"] = matrix
        st.session_state["eval_true"], st.session_state["eval_pred"] = cell
        st.session_state["eval_page"] = 1
    elif cell is None:
        st.session_state.pop(f"eval_seen_{matrix}", None)

if st.session_state.get("eval_opened") != (name, checkpoint):  # a new run: open on its largest confusion
    st.session_state["eval_opened"] = (name, checkpoint)
    st.session_state["eval_matrix"] = "class"
    st.session_state["eval_true"], st.session_state["eval_pred"] = largest_error_cell(r["confusion"])
    st.session_state["eval_page"] = 1

st.subheader("Errors of one cell")
s = st.columns([1, 2, 2, 1])
matrix = s[0].selectbox("Matrix", list(MATRICES), key="eval_matrix",
                        format_func=lambda k: "18 classes" if k == "class" else k)
values = MATRICES[matrix]
for key in ("eval_true", "eval_pred"):  # a value of another matrix does not fit this one
    if st.session_state.get(key, 0) >= len(values):
        st.session_state[key] = 0
true = s[1].selectbox("True class" if matrix == "class" else f"True {matrix}", range(len(values)),
                      format_func=lambda i: f"{i}: {values[i]}", key="eval_true")
pred = s[2].selectbox("Predicted class" if matrix == "class" else f"Predicted {matrix}", range(len(values)),
                      format_func=lambda i: f"{i}: {values[i]}", key="eval_pred")
cell = cell_errors(preds, true, pred, matrix)
if cell.empty:
    st.write("No image in this cell.")
else:
    pages = (len(cell) + PAGE - 1) // PAGE
    if not 1 <= st.session_state.get("eval_page", 1) <= pages:
        st.session_state["eval_page"] = 1
    page = s[3].number_input(f"Page (of {pages})", 1, pages, key="eval_page") - 1
    shown = cell.iloc[page * PAGE:(page + 1) * PAGE]
    st.caption(f"{len(cell)} image(s): true {values[true]}, predicted {values[pred]}")
    thumbs, captions = [], []
    for row in shown.itertuples():
        try:
            thumbs.append(thumbnail(resolve_image(photo_root, row.path), 128))
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
    if show:
        try:
            owner = f"{group}-fold{int(cell.loc[pick, 'fold']) + 1}" if group else name  # the model that scored it
            model, cfg = model_for(runs_root, owner, checkpoint,
                                   (RunFolder(runs_root, owner).path / checkpoint).stat().st_mtime)
            head = "class"
            if cfg.head == "multi":
                head = st.radio("Explain", ["class", "mask", "gender", "age"], horizontal=True, key="eval_cam_head",
                                help="a three-head model: the combined 18 classes, or one head")
            row = cell.loc[pick]
            targets = [(int(row.predicted), f"predicted: {names[int(row.predicted)]}"),
                       (int(row.label), f"true: {names[int(row.label)]}")]
            views, labels_ = explain_image(model, cfg, resolve_image(photo_root, row.path), targets, method=method,
                                           head=head)
            st.image(views, caption=labels_, width=220)
        except (ImageError, ValueError, CheckpointError, OSError) as e:
            st.error(f"Cannot show Grad-CAM: {e}")

@st.cache_data(max_entries=8, show_spinner=False)
def ages_of(cfg_json: str):
    """person_id -> age from the run's data (with its corrections): indexed once, not on every decision."""
    return reviews.person_ages(RunConfig.from_json(cfg_json))


@st.fragment
def review_panel(owner_cfg: RunConfig) -> None:
    """The review queue; a decision reruns this panel only (under a second), not the page's matrices."""
    st.subheader("Likely label errors")
    r = st.columns([2, 1, 3])
    corr_name = r[0].text_input("Corrections file", value=reviews.DEFAULT_FILE, key="eval_corr_name",
                                help="Accepted changes go to <runs root>/corrections/NAME.csv: pick it in the "
                                     "sidebar's Label corrections to see the data and train with it")
    show_border = r[1].toggle("Borderline ages", key="eval_border",
                              help="Age suggestions for people at a band bound (within the borderline distance, the "
                                   "bound itself included): the model's doubt there is expected, so they are kept "
                                   "apart")
    try:
        review = reviews.open_review(runs_root, group or name, into=corr_name.strip(), preds=preds, cfg=owner_cfg,
                                     checkpoint=checkpoint, ages=ages_of(owner_cfg.to_json()))
    except ValueError as e:
        st.error(str(e))
        return
    accepted, rejected = reviewed_ids(review.file)
    q = review.queue
    pending = review.pending.borderline if show_border else review.pending.main
    r[2].caption(f"**{q.flagged} flagged of {q.scored} people scored** ({len(q.main)} in the queue, "
                 f"{len(q.borderline)} borderline ages); {len(accepted)} accepted and {len(rejected)} rejected in "
                 f"{review.file.name}; {len(pending)} pending" +
                 (" · scored out of fold: the model never trained on these people" if group else ""))
    if review.warning:
        st.warning(review.warning)
    if done := st.session_state.pop("eval_review_done", None):
        st.success(done)
    if pending.empty:
        st.success("Nothing left to review here." if q.flagged else "No label looks wrong to this model.")
    else:
        decide_many(review, pending)
    if accepted or rejected:
        if st.button("Undo the last decision", key="eval_undo", icon=":material/undo:"):
            try:
                st.session_state["eval_review_done"] = f"Undone: {', '.join(reviews.undo(review))} as before."
            except ValueError as e:
                st.session_state["eval_review_done"] = str(e)
            ui.rerun_fragment()
    person_details(review, pending)
    if accepted:
        st.caption(f"Next: choose **{review.file.stem}** in the sidebar's Label corrections, then train (Train page): "
                   f"the run reads {review.file}. Headless: `maskcls review {group or name} --into "
                   f"{review.file.stem}`.")
        st.download_button(f"Download {review.file.name}", read_text_file(review.file, "corrections",
                                                                          LIMITS["table"]),
                           file_name=review.file.name, mime="text/csv")


def decide_many(review, pending) -> None:
    """The queue as a table with the given and suggested label side by side, each score explained; tick people,
    accept or reject them in one decision."""
    shown = pending.head(50).assign(pick=False, why=[reviews.explain(row) for _, row in pending.head(50).iterrows()])
    edited = st.data_editor(
        shown[["pick", "person_id", "attribute", "given_name", "suggested_name", "score", "why"]],
        hide_index=True, width="stretch", key="eval_queue", disabled=["person_id", "attribute", "given_name",
                                                                      "suggested_name", "score", "why"],
        column_config={"pick": st.column_config.CheckboxColumn("pick", help="tick, then Accept or Reject below"),
                       "given_name": st.column_config.TextColumn("given"),
                       "suggested_name": st.column_config.TextColumn("suggested"),
                       "score": st.column_config.ProgressColumn(min_value=0, max_value=1, format="%.2f",
                                                                help="agreement x how far the person's probability "
                                                                     f"of the suggestion rises above the {NEIGHBOURS} "
                                                                     "closest peers with the same label"),
                       "why": st.column_config.TextColumn("why", width="large")})
    picked = edited.loc[edited["pick"], "person_id"].tolist()
    b = st.columns([1, 1, 3])
    if b[0].button(f"Accept {len(picked)} picked", key="eval_picked_accept", type="primary", disabled=not picked):
        rows = reviews.accept_many(review, picked)
        st.session_state["eval_review_done"] = f"Accepted {len(rows)} into {review.file.name}: {', '.join(picked)}"
        ui.rerun_fragment()
    if b[1].button(f"Reject {len(picked)} picked", key="eval_picked_reject", disabled=not picked):
        reviews.reject_many(review, picked)
        st.session_state["eval_review_done"] = f"Rejected {len(picked)} (kept as labelled): {', '.join(picked)}"
        ui.rerun_fragment()


def person_details(review, pending) -> None:
    """The first pending people's photos and the model's probabilities, one decision button each."""
    by_person = preds.groupby("person_id")["path"].apply(list)
    for i, row in enumerate(pending.head(6).itertuples()):
        with st.expander(f"{row.person_id}: {row.suggestion} (score {row.score:.2f}, {row.agreement:.0%} of photos)",
                         expanded=i == 0):
            imgs = []
            for p in sorted(by_person.get(row.person_id, [])):
                try:
                    imgs.append(thumbnail(resolve_image(photo_root, p), 96))
                except ImageError:
                    pass
            if imgs:
                st.image(imgs, width=96)
            st.dataframe(person_probabilities(preds, row.person_id), width="stretch",
                         key=f"eval_probs_{row.person_id}")
            b = st.columns([2, 1, 3])
            if b[0].button(f"Accept: {row.suggestion}", key=f"eval_accept_{row.person_id}", type="primary"):
                reviews.accept(review, row.person_id)
                st.session_state["eval_review_done"] = f"{row.person_id}: written to {review.file.name}"
                ui.rerun_fragment()
            if b[1].button("Reject", key=f"eval_reject_{row.person_id}"):
                reviews.reject(review, row.person_id)
                ui.rerun_fragment()


try:
    review_panel(RunConfig.from_dict((fold_runs(runs_root, group)[0] if group else
                                      RunFolder(runs_root, name)).read_config()))
except ValueError as e:
    st.error(str(e))

st.subheader("Macro-F1 decision tuning")
if group:
    if st.button("Fit per-class biases on the out-of-fold table", key="eval_tune_oof"):
        fit = crossfit_bias(preds)
        save_fold_bias(runs_root, group, fit)
        st.success(f"Macro F1 {fit['macro_f1']:.4f} → **{fit['crossfit_f1']:.4f} cross-fitted** "
                   f"({fit['crossfit_gain']:+.4f}: fitted on the other folds, scored on each held-out one); "
                   f"in-sample {fit['in_sample_f1']:.4f} ({fit['in_sample_gain']:+.4f}, optimistic). Saved into every "
                   f"fold run: `maskcls predict --folds {group} --tuned` applies it.")
        st.bar_chart(np.round(fit["bias"], 3))
elif st.button("Fit per-class biases on these validation predictions", key="eval_tune"):
    bias, before, after = tune_biases(probs_of(preds), preds["label"].to_numpy())
    save_bias(runs_root, name, bias, before=before, after=after, checkpoint=checkpoint)
    st.success(f"Macro F1 {before:.4f} → {after:.4f} (+{after - before:.4f}) on validation; saved with the run "
               f"(use `maskcls predict --tuned`). Fitted on the same split it is scored on, so the gain is optimistic.")
    st.bar_chart(np.round(bias, 3))
