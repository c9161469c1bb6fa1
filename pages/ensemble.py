"""Ensemble page: pick checkpoints, a method and TTA; score on validation; predict eval; download the CSV."""

import pandas as pd
import streamlit as st

import ui
from maskcls.wrapup import charts
from maskcls.common.settings import default_cache_dir
from maskcls.common.fileio import LIMITS, read_text_file
from maskcls.common.devices import resolve_device
from maskcls.infer.ensemble import METHOD_HELP, METHODS, class_distribution, score_members
from maskcls.infer.members import Member
from maskcls.infer.demo_score import demo_interval_text, describe_demo_score
from maskcls.orchestration.submissions import (SubmissionFolder, SubmissionRequest, cancel_submission, list_submissions, new_name,
    submit_here, read_submission, start_submission, suggest_background)
from maskcls.orchestration.run_index import index_rows
from maskcls.common.checkpoints import CheckpointError
from maskcls.infer.evaluation import report
from maskcls.orchestration.groups import fold_groups, fold_member_refs, has_oof, read_group_oof

st.title("Ensemble")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]
options = [f"{r['name']}:{c}" for r in index_rows(runs_root) for c in r["checkpoints"]]  # teammates' pulled runs too
if not options:
    st.info("No checkpoints yet: train a run on the Train page.")
    st.stop()
index = ui.current_index()
if index is None:
    st.stop()

groups = fold_groups(runs_root)  # teammates' pulled fold groups too (MEMBER/NAME)
if groups:
    f = st.columns([2, 1, 3])
    group = f[0].selectbox("Fold ensemble", groups, key="ens_fold_group", help="the K runs of `--folds K --name NAME`")
    try:
        fold_members = [f"{r}:best.pt" for r in fold_member_refs(runs_root, group) if f"{r}:best.pt" in options]
    except ValueError as e:  # folds still running, cancelled or failed, or a group with a missing fold
        fold_members = []
        f[2].warning(str(e))
    f[1].button("Use its folds", key="ens_use_folds", disabled=not fold_members, on_click=lambda: st.session_state.update(ens_members=fold_members))
    if has_oof(runs_root, group) and fold_members:
        f[2].caption(f"{group}: out-of-fold macro F1 {report(read_group_oof(runs_root, group))['macro_f1']:.4f} over every "
                     f"training image. The folds' validation splits differ, so score a fold ensemble by this figure, "
                     f"not by “Score on validation”.")
picked = st.multiselect("Members (run:checkpoint)", options, key="ens_members",
                        default=None if "ens_members" in st.session_state else options[:1],
                        help="Any checkpoints of any runs; for a soup, pick several epochs of one run")
c = st.columns(4)
method = c[0].selectbox("Method", METHODS, key="ens_method", help=" · ".join(f"{k}: {v}" for k, v in METHOD_HELP.items()))
tta = c[1].checkbox("Flip TTA", value=True, key="ens_tta")
tuned = c[2].checkbox("Use tuned class biases", key="ens_tuned", help="Biases fitted on the Evaluate page")
device = c[3].selectbox("Device", ["auto", "cpu", "cuda"], key="ens_device")
members = [Member.parse(m) for m in picked]
if not members:
    st.stop()
dev = resolve_device(device)
cache_dir = str(default_cache_dir(index.root))

if st.button("Score on validation", key="ens_score"):
    bar = st.progress(0.0, text="Scoring every member and the ensemble on the shared validation split…")
    try:
        table, notes, _ = score_members(runs_root, members, method, dev, cache_dir, tta=tta,
                                        progress=lambda f, text: bar.progress(min(1.0, f), text=text))
        st.session_state["ens_table"] = (table, notes)
    except (ValueError, CheckpointError, OSError) as e:
        st.error(str(e))
    bar.empty()
if "ens_table" in st.session_state:
    table, notes = st.session_state["ens_table"]
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"macro_f1": st.column_config.NumberColumn("macro F1", format="%.4f"),
                                "F1 low": st.column_config.NumberColumn(format="%.4f", help="95 % interval over the "
                                                                        "validation people"),
                                "F1 high": st.column_config.NumberColumn(format="%.4f"),
                                "accuracy": st.column_config.NumberColumn(format="%.4f")})
    verdict = table.attrs.get("verdict")
    if verdict:  # is the ensemble better than its best member, paired on the same people?
        (st.success if verdict["judged"] and verdict["interval"] and verdict["interval"][0] > 0 else
         st.warning if verdict["difference"] < 0 else st.info)("Ensemble against its best member: " + verdict["text"])
    for n in notes:
        st.warning(n)

if index.eval is None:
    st.warning("This data root has no eval/info.csv: nothing to predict.")
    st.stop()
st.subheader("Predict the eval set")
long = suggest_background(len(index.eval), len(members), tta, dev.type)
background = st.checkbox("Run as a background job", value=long, key=f"ens_background_{long}",
                         help="It keeps running if you leave the page; suggested for long predictions")
if st.button("Predict the eval set", type="primary", key="ens_predict"):
    request = SubmissionRequest(str(index.root), picked, method, tta, tuned, device, cache_dir)
    name = new_name(runs_root)
    try:
        if background:
            start_submission(request, runs_root, name)
            st.toast(f"{name} started in the background")
        else:
            bar = st.progress(0.0, text="Predicting…")
            status = submit_here(request, runs_root, name,
                                 progress=lambda f, text: bar.progress(min(1.0, f), text=text))
            bar.empty()
            if status["state"] != "completed":
                st.error(f"Prediction failed: {status.get('error')}")
        st.session_state["ens_selected"] = name
    except ValueError as e:
        st.error(f"Not started: {e}")


def show_result(info: dict) -> None:
    """A finished prediction: score, timing, download button, class distribution."""
    job = SubmissionFolder(runs_root, info["name"])
    try:
        sub = read_submission(job)
    except (ValueError, OSError) as e:
        st.error(str(e))
        return
    st.success(f"{info.get('rows', len(sub))} rows written to {job.csv_path}"
               + (f" in {info['seconds']['total']:.1f} s" if info.get("seconds") else ""))
    if info.get("chosen"):
        st.info(f"Greedy soup kept {len(info['chosen'])} checkpoint(s): {', '.join(info['chosen'])} "
                f"(validation macro F1 {info['greedy_val_f1']:.4f})")
        st.dataframe(pd.DataFrame(info.get("greedy_steps") or []), hide_index=True, key="ens_greedy_steps")
    for n in info.get("notes") or []:
        st.warning(n)
    if info.get("score"):
        score = info["score"]
        ci = score.get("macro_f1_ci")
        st.metric("Demo eval macro F1 (hidden labels)", f"{score['macro_f1']:.4f}",
                  help=describe_demo_score(score) + (
                      ". A gap to the members' validation F1 inside this interval is who is in the eval set, "
                      "not the model" if ci else ". This demo predates person ids in its truth: no interval"))
        if ci:
            st.caption(f"95 % interval over the {score['people']} eval people: {demo_interval_text(score)}")
    st.download_button("Download submission CSV", read_text_file(job.csv_path, "submission.csv", LIMITS["table"],
                                                                 root=job.path), file_name="submission.csv",
                       mime="text/csv", key="ens_download", icon=":material/download:")
    dist = class_distribution(index.train["label"], sub["ans"].to_numpy())
    st.plotly_chart(charts.distribution_figure(dist, index.bounds), width="stretch", key="ens_dist")


def predictions_panel(polling: bool) -> None:
    """Polls while a prediction runs; one full rerun when the last one ends stops the polling."""
    infos = list_submissions(runs_root)
    if not infos:
        return
    if polling and not any(i.get("state") in ("queued", "running") for i in infos):
        st.rerun()
    table = pd.DataFrame([{"name": i["name"], "state": i.get("state"), "progress": i.get("progress", 0.0),
                           "stage": i.get("stage", ""),
                           "method": (i.get("method") or "-") + (" + flip" if i.get("tta") else ""),
                           "members": ", ".join(i.get("members") or []),  # none for a damaged request
                           "demo F1": (i.get("score") or {}).get("macro_f1"),
                           "demo F1 95 %": demo_interval_text(i.get("score")), "error": i.get("error") or ""}
                          for i in infos])
    st.dataframe(table, hide_index=True, width="stretch", key="ens_jobs",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
                                "demo F1": st.column_config.NumberColumn(format="%.4f"),
                                "demo F1 95 %": st.column_config.TextColumn(
                                    help="interval over the demo's eval people (resampled by person)")})
    names = [i["name"] for i in infos]
    current = st.session_state.get("ens_selected")
    pick = st.selectbox("Prediction", names, index=names.index(current) if current in names else 0, key="ens_pick")
    st.session_state["ens_selected"] = pick
    info = next(i for i in infos if i["name"] == pick)
    if info.get("state") in ("queued", "running"):
        st.progress(min(1.0, info.get("progress", 0.0)), text=f"{pick}: {info.get('stage', '')}")
        if not info.get("in_process") and st.button(f"Cancel {pick}", key="ens_cancel"):
            try:
                st.toast(f"{pick}: {cancel_submission(runs_root, pick)['state']}")
            except ValueError as e:
                st.error(str(e))
    elif info.get("state") == "completed":
        show_result(info)
    else:
        st.error(f"{pick} {info.get('state')}: {info.get('error', '')}")


running = any(i.get("state") in ("queued", "running") for i in list_submissions(runs_root))
st.subheader("Predictions")
st.fragment(run_every=2.0 if running else None)(predictions_panel)(running)


def leaderboard_panel() -> None:
    """The leaderboard log: type a submission's public score (or upload the platform's CSV), see it beside the
    validation score with the expected private range, and the two finals."""
    from maskcls.orchestration import leaderboard as lb
    done = [i["name"] for i in list_submissions(runs_root) if i.get("state") == "completed"]
    if not done:
        st.caption("Record each submission's public score here once the platform shows it.")
        return
    c = st.columns([2, 1, 1])
    pick = c[0].selectbox("Submission", done, key="ens_lb_pick")
    score = c[1].number_input("Public score", 0.0, 1.0, value=None, step=0.0001, format="%.4f", key="ens_lb_score",
                              placeholder="e.g. 0.7812")
    if c[2].button("Record", key="ens_lb_record", disabled=score is None, type="primary"):
        try:
            lb.record_public(runs_root, pick, score)
            with st.spinner("Scoring the ensemble on validation once (kept beside the submission)…"):
                lb.submission_validation(runs_root, pick, device=str(resolve_device("auto")))
            st.success(f"{pick}: public score {score:.4f} recorded")
        except (ValueError, OSError, CheckpointError) as e:
            st.error(f"Not recorded: {e}")
    upload = st.file_uploader("Or the platform's CSV of submissions (a name or file-name column and a public score "
                              "column)", type=["csv"], key="ens_lb_csv")
    if upload is not None and st.button("Import scores", key="ens_lb_import"):
        import tempfile
        with tempfile.NamedTemporaryFile(suffix=".csv") as f:
            f.write(upload.getvalue()[: LIMITS["table"] + 1])
            f.flush()
            try:
                got = lb.import_platform_csv(runs_root, f.name)
                for name in got["recorded"]:
                    lb.submission_validation(runs_root, name, device=str(resolve_device("auto")))
                st.success(f"Recorded {len(got['recorded'])}: {', '.join(got['recorded']) or '-'}; not matched: "
                           f"{', '.join(got['unmatched']) or '-'}")
            except (ValueError, OSError, CheckpointError) as e:
                st.error(f"Not imported: {e}")
    try:
        board = lb.leaderboard(runs_root)
    except ValueError as e:
        st.error(str(e))
        return
    table = pd.DataFrame([{"submission": r["name"], "validation F1": r["val_f1"],
                           "95 % interval": f"[{r['val_ci'][0]:.4f}, {r['val_ci'][1]:.4f}]" if r["val_ci"] else "-",
                           "public": r["public"],
                           "expected private": r["private"]["expected"] if r["private"] else None,
                           "private 95 % range": f"[{r['private']['range'][0]:.4f}, {r['private']['range'][1]:.4f}]"
                           if r["private"] else "-"} for r in board["rows"]])
    st.dataframe(table, hide_index=True, width="stretch", key="ens_lb_table",
                 column_config={k: st.column_config.NumberColumn(format="%.4f")
                                for k in ("validation F1", "public", "expected private")})
    if any(r.get("public") is not None for r in board["rows"]):
        st.plotly_chart(charts.leaderboard_figure(board["rows"]), width="stretch", key="ens_lb_chart")
    for f in board["finals"]:
        (st.caption if f.get("not_chosen") else st.info)(
            f"{'Not chosen' if f.get('not_chosen') else 'Final'}: **{f['name']}**: {f['why']}")
    st.caption(f"Eval set: {board['eval_people']} people, {board['public_people']} on the public board. The private "
               f"range combines the validation score (shifted by what the other submissions' public scores show) and "
               f"the public score, each weighted by its noise (README: Is it really better?).")


st.subheader("Leaderboard log")
leaderboard_panel()
