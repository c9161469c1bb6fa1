"""Report page: choose what goes into the wrap-up report, add the team's notes, build it, preview, download."""
import tempfile
from pathlib import Path

import streamlit as st

import ui  # noqa: F401  (sets up the import path and session defaults)
from maskcls.orchestration.ladder import list_ladders
from maskcls.wrapup.document import SECTIONS, ReportRequest
from maskcls.wrapup.render import write_report
from maskcls.orchestration.run_index import index_rows
from maskcls.orchestration.submissions import list_submissions

st.title("Report")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]
finished = [r["name"] for r in index_rows(runs_root) if r["best macro F1"] is not None]
if not finished:
    st.info(f"No finished run with a validation F1 in {runs_root} yet: the report is made of them.")
    st.stop()
runs = st.multiselect("Runs in the experiments table", finished, key="report_runs", placeholder="every finished run")
ladders = st.multiselect("Ladders", list_ladders(runs_root), key="report_ladders")
c = st.columns(2)
a = c[0].selectbox("Compare A", finished, index=None, key="report_cmp_a", placeholder="no comparison")
b = c[1].selectbox("with B", finished, index=None, key="report_cmp_b", placeholder="no comparison")
subs = st.multiselect("Submissions", [s["name"] for s in list_submissions(runs_root)], key="report_subs",
                      placeholder="every submission")
with st.expander("Notes: the team's own words, one box per section", expanded=False):
    notes = {t: st.text_area(t, key=f"report_note_{t}", height=80) for t in SECTIONS}
title = st.text_input("Title", "Mask classification: wrap-up report", key="report_title")

if st.button("Build the report", type="primary", key="report_build", icon=":material/description:"):
    request = ReportRequest(runs, ladders, [f"{a}:{b}"] if a and b and a != b else [], subs,
                            {k: v for k, v in notes.items() if v.strip()}, title)
    out = Path(tempfile.mkdtemp(prefix="maskcls-report-")) / "report.html"
    try:
        with st.spinner("Building from the stored intervals and predictions…"):
            result = write_report(runs_root, request, out, markdown=False)
        st.session_state["report_built"] = {**result, "page": out.read_text(encoding="utf-8")}
    except ValueError as e:
        st.error(f"Not built: {e}")

built = st.session_state.get("report_built")
if built:
    st.success(f"Built: {len(built['sections'])} sections, {built['bytes'] / 1e6:.1f} MB, one file that opens offline. "
               f"`maskcls report` also writes the Markdown with PNG figures.")
    st.download_button("Download report.html", built["page"], file_name="report.html", mime="text/html",
                       key="report_download", icon=":material/download:")
    st.iframe(built["page"], height=900)  # the report this page built (its text escaped), not a user's HTML
