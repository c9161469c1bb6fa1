"""Runs page: every run in one sortable table; overlay curves and diff configs of several; delete with care."""
import streamlit as st

import ui  # noqa: F401  (sets up the import path and session defaults)
from maskcls.runs.compare import config_diff, curves_figure, delete_run, runs_table

st.title("Runs")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]
table = runs_table(runs_root)
if table.empty:
    st.info(f"No runs in {runs_root} yet: launch one on the Train page.")
    st.stop()
st.dataframe(table, hide_index=True, width="stretch", key="runs_table",
             column_config={"best macro F1": st.column_config.NumberColumn(format="%.4f"),
                            "best accuracy": st.column_config.NumberColumn(format="%.4f")})

names = table["name"].tolist()
picked = st.multiselect("Compare runs", names, default=names[: min(2, len(names))], key="runs_pick")
if picked:
    st.plotly_chart(curves_figure(runs_root, picked), width="stretch")
    if len(picked) > 1:
        diff = config_diff(runs_root, picked)
        st.markdown("**Config differences**")
        if diff.empty:
            st.write("Same config.")
        else:
            st.dataframe(diff, width="stretch")

with st.expander("Delete a run"):
    victim = st.selectbox("Run", names, key="runs_delete_pick")
    sure = st.checkbox(f"Yes, delete {victim} and all its checkpoints", key="runs_delete_sure")
    if st.button("Delete", disabled=not sure, key="runs_delete"):
        try:
            delete_run(runs_root, victim)
            st.success(f"Deleted {victim}.")
            st.rerun()
        except ValueError as e:
            st.error(str(e))
