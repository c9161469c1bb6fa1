"""Ensemble page: pick checkpoints, a method and TTA; score on validation; predict eval; download the CSV."""
import time
from pathlib import Path

import plotly.express as px
import streamlit as st

import ui
from maskcls.devices import resolve_device
from maskcls.ensemble import METHODS, Member, class_distribution, predict_submission, score_members
from maskcls.rundir import CheckpointError, list_runs

st.title("Ensemble")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]
options = [f"{r.name}:{c}" for r in list_runs(runs_root) for c in r.list_checkpoints()]
if not options:
    st.info("No checkpoints yet: train a run on the Train page.")
    st.stop()
index = ui.current_index()
if index is None:
    st.stop()

picked = st.multiselect("Members (run:checkpoint)", options, default=options[:1], key="ens_members")
c = st.columns(4)
method = c[0].selectbox("Method", METHODS, key="ens_method",
                        help="soft: mean of probabilities · hard: majority vote · soup: average the weights (one architecture)")
tta = c[1].checkbox("Flip TTA", value=True, key="ens_tta")
tuned = c[2].checkbox("Use tuned class biases", key="ens_tuned", help="Biases fitted on the Evaluate page")
device = c[3].selectbox("Device", ["auto", "cpu", "cuda"], key="ens_device")
members = [Member.parse(m) for m in picked]
if not members:
    st.stop()
dev = resolve_device(device)
cache_dir = str(Path(index.root) / ".maskcls-cache")

if st.button("Score on validation", key="ens_score"):
    try:
        with st.spinner("Scoring every member and the ensemble on the shared validation split…"):
            table, notes, _ = score_members(runs_root, members, method, dev, cache_dir, tta)
        st.session_state["ens_table"] = (table, notes)
    except (ValueError, CheckpointError) as e:
        st.error(str(e))
if "ens_table" in st.session_state:
    table, notes = st.session_state["ens_table"]
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"macro_f1": st.column_config.NumberColumn(format="%.4f"),
                                "accuracy": st.column_config.NumberColumn(format="%.4f")})
    for n in notes:
        st.warning(n)

if index.eval is None:
    st.warning("This data root has no eval/info.csv: nothing to predict.")
    st.stop()
if st.button("Predict the eval set", type="primary", key="ens_predict"):
    bar = st.progress(0.0, text="Predicting…")
    out = Path(runs_root) / "submissions" / f"submission-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    try:
        r = predict_submission(index.root, runs_root, members, method, out, dev, tta, tuned, cache_dir,
                               progress=lambda d, n: bar.progress(d / n, text=f"member {d}/{n}"))
        st.session_state["ens_result"] = {"csv": r["csv"].read_text(), "path": str(r["csv"]), "rows": r["rows"],
                                          "score": r["score"], "dist": class_distribution(index.train["label"], r["probs"])}
        bar.progress(1.0, text="Done")
    except (ValueError, CheckpointError, OSError) as e:
        bar.empty()
        st.error(f"Prediction failed: {e}")
result = st.session_state.get("ens_result")
if result:
    st.success(f"{result['rows']} rows written to {result['path']}")
    if result["score"]:
        st.metric("Demo eval macro F1 (hidden labels)", f"{result['score']['macro_f1']:.4f}")
    st.download_button("Download submission CSV", result["csv"], file_name="submission.csv", mime="text/csv",
                       key="ens_download", icon=":material/download:")
    dist = result["dist"].reset_index(names="class").melt(id_vars="class", var_name="set", value_name="share %")
    st.plotly_chart(px.bar(dist, x="class", y="share %", color="set", barmode="group", height=320,
                           title="Predicted class distribution vs training"), width="stretch")
