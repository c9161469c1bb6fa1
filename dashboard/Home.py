"""Studio entry point: declares the pages and the shared sidebar, then runs the chosen page."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st  # noqa: E402

import ui  # noqa: E402

PAGES = ui.REPO / "pages"


def home() -> None:
    st.title("maskcls studio")
    st.caption("Face mask x gender x age: 18 classes, scored by macro F1")
    ui.demo_banner()
    index = ui.current_index()
    if index is None:
        return
    s = index.summary()
    st.markdown(f"**Data root:** `{s['root']}`")
    c = st.columns(4)
    c[0].metric("People", f"{s['people']:,}")
    c[1].metric("Training images", f"{s['images']:,}")
    c[2].metric("Eval images", f"{s['eval_images']:,}")
    c[3].metric("Skipped files", f"{len(s['skipped']):,}")
    if s["eval_missing"]:
        st.warning(f"{s['eval_missing']} images named in eval/info.csv are missing (see the Data page).")
    st.subheader("What you can do here")
    st.page_link(str(PAGES / "data.py"), label="Data: class imbalance, attributes, leak-free splits, samples", icon=":material/bar_chart:")
    st.page_link(str(PAGES / "augment.py"), label="Augment: preview transforms at chosen probabilities, save a spec",
                 icon=":material/palette:")
    st.page_link(str(PAGES / "train.py"), label="Train: launch background jobs on the GPU or CPU, watch them live",
                 icon=":material/model_training:")
    st.page_link(str(PAGES / "runs.py"), label="Runs: compare runs, curves and config differences", icon=":material/stacked_line_chart:")
    st.page_link(str(PAGES / "evaluate.py"), label="Evaluate: confusion, per-class F1, errors with Grad-CAM, "
                 "likely label errors", icon=":material/search:")
    st.page_link(str(PAGES / "ensemble.py"), label="Ensemble: soups and votes with TTA, the submission CSV", icon=":material/join:")
    st.page_link(str(PAGES / "sweeps.py"), label="Sweeps: Optuna studies over the Train form's config, pruned per "
                 "epoch, on one server or several", icon=":material/tune:")
    st.page_link(str(PAGES / "ladders.py"), label="Ladders: which step of a recipe pays, each gain with its interval "
                 "over people", icon=":material/stairs:")


st.set_page_config(page_title="maskcls studio", page_icon="😷", layout="wide")
ui.sidebar()
pages = [
    st.Page(home, title="Home", icon=":material/home:", default=True),
    st.Page(str(PAGES / "data.py"), title="Data", icon=":material/bar_chart:"),
    st.Page(str(PAGES / "augment.py"), title="Augment", icon=":material/palette:"),
    st.Page(str(PAGES / "train.py"), title="Train", icon=":material/model_training:"),
    st.Page(str(PAGES / "runs.py"), title="Runs", icon=":material/stacked_line_chart:"),
    st.Page(str(PAGES / "evaluate.py"), title="Evaluate", icon=":material/search:"),
    st.Page(str(PAGES / "ensemble.py"), title="Ensemble", icon=":material/join:"),
    st.Page(str(PAGES / "sweeps.py"), title="Sweeps", icon=":material/tune:"),
    st.Page(str(PAGES / "ladders.py"), title="Ladders", icon=":material/stairs:"),
    st.Page(str(PAGES / "report.py"), title="Report", icon=":material/description:"),
]
st.navigation(pages).run()
