"""Studio entry point: declares the pages and the shared sidebar, then runs the chosen page."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st  # noqa: E402

import ui  # noqa: E402
from maskcls.orchestration.loop import LOOP, next_step  # noqa: E402

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
    try:
        step = next_step(st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"])
        st.info(f"**Next: {dict((k, t) for k, t, _ in LOOP)[step['page']]}**: {step['why']}", icon=":material/flag:")
        st.page_link(str(PAGES / f"{step['page']}.py"), label=f"Go to {step['page'].title()}",
                     icon=":material/arrow_forward:")
    except (OSError, ValueError) as e:
        st.warning(f"The next step cannot be worked out: {e}")
    st.subheader("The loop, in order")
    for n, (key, title, what) in enumerate(LOOP, 1):
        st.page_link(str(PAGES / f"{key}.py"), label=f"{n}. {title}: {what}", icon=ICONS[key])
    st.subheader("Beside the loop")
    st.page_link(str(PAGES / "ladders.py"), label="Ladders: which step of a recipe pays, each gain with its interval "
                 "over people", icon=ICONS["ladders"])
    st.page_link(str(PAGES / "sweeps.py"), label="Sweeps: Optuna studies over the Train form's config, pruned per "
                 "epoch, on one server or several", icon=ICONS["sweeps"])
    st.page_link(str(PAGES / "runs.py"), label="Team: every member's runs, pulled, compared and ensembled (the Runs "
                 "page's Team section; README: Working as a team)", icon=":material/groups:")


ICONS = {"data": ":material/bar_chart:", "augment": ":material/palette:", "train": ":material/model_training:",
         "runs": ":material/stacked_line_chart:", "evaluate": ":material/search:", "ensemble": ":material/join:",
         "sweeps": ":material/tune:", "ladders": ":material/stairs:", "report": ":material/description:"}


st.set_page_config(page_title="maskcls studio", page_icon="😷", layout="wide")
ui.sidebar()
pages = [
    st.Page(home, title="Home", icon=":material/home:", default=True),
    *[st.Page(str(PAGES / f"{key}.py"), title=title, icon=ICONS[key]) for key, title, _ in LOOP],
    st.Page(str(PAGES / "ladders.py"), title="Ladders", icon=ICONS["ladders"]),
    st.Page(str(PAGES / "sweeps.py"), title="Sweeps", icon=ICONS["sweeps"]),
]
st.navigation(pages).run()
