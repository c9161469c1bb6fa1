"""Shared studio helpers: the sidebar settings, cached data access, and user-facing errors."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import streamlit as st  # noqa: E402

from maskcls.common.settings import check_runs_root, default_data_root, default_runs_root  # noqa: E402
from maskcls.data.corrections import list_presets as correction_presets, list_saved_corrections  # noqa: E402
from maskcls.data.index import DataIndex, index_data  # noqa: E402
from maskcls.data.demo import STUDIO_DEMO, DemoGeneration, demo_folder, demo_progress, start_demo_generation  # noqa: E402
from maskcls.data.labels import AgeBounds  # noqa: E402

DEFAULTS = {
    "data_root": default_data_root(),
    "runs_root": default_runs_root(),
    "age_lower": 30,
    "age_upper": 60,
    "corrections": "none",
}


def init_session() -> None:
    for k, v in DEFAULTS.items():
        st.session_state.setdefault(k, v)


def sidebar() -> None:
    """Data root, runs root, age bounds and label corrections: shared by every page.

    Each widget's declared default is the session's current value: a page switched to while the first run was
    still drawing gets a browser that lost these widgets' values (streamlit/streamlit#6146); it then shows, and a
    form submitted there sends back, the declared default. With the bare defaults that was an empty data root and
    age bounds 1 and 2: a sweep or run launched at that moment trained on the demo with those bounds."""
    init_session()
    state = st.session_state
    with st.sidebar:
        st.text_input("Data root", value=state["data_root"], key="data_root", placeholder="empty: generated demo data",
                      help="A folder in the competition layout (train/images/<id>_<gender>_<race>_<age>/, eval/)")
        st.text_input("Runs root", value=state["runs_root"], key="runs_root", help="Where training runs are written")
        c1, c2 = st.columns(2)
        c1.number_input("Age bound 1", min_value=1, max_value=98, value=int(state["age_lower"]), step=1,
                        key="age_lower")
        c2.number_input("Age bound 2", min_value=2, max_value=99, value=int(state["age_upper"]), step=1,
                        key="age_upper", help="Top teams trained with 58")
        try:
            check_runs_root(st.session_state["runs_root"])
        except ValueError as e:
            st.error(str(e))
        saved = list_saved_corrections(st.session_state["runs_root"])
        if st.session_state.get("corrections") not in correction_presets() + saved:
            st.session_state["corrections"] = "none"
        options = correction_presets() + saved
        st.selectbox("Label corrections", options, index=options.index(state["corrections"]), key="corrections",
                     format_func=lambda c: f"{Path(c).stem} (reviewed in the studio)" if c in saved else c,
                     help="Per-person label fixes applied when the data is indexed and when a run trains")


def bounds() -> AgeBounds | None:
    try:
        return AgeBounds(int(st.session_state["age_lower"]), int(st.session_state["age_upper"]))
    except ValueError as e:
        st.error(str(e))
        return None


def demo_root() -> str:
    """The demo dataset's folder, once generated. On first start a detached process generates it (resuming
    whatever is written); every page only watches its progress, so a page switch neither restarts nor
    duplicates the work."""
    folder = demo_folder()
    if demo_progress(folder)["complete"]:
        return str(folder)
    start_demo_generation(folder)
    bar = st.progress(0.0, text="Generating the synthetic demo dataset (first start only)…")
    idle_since = None
    while True:
        state = demo_progress(folder)
        if state["complete"]:
            bar.empty()
            return str(folder)
        total = state["total"] or STUDIO_DEMO["people"] + STUDIO_DEMO["eval_people"]
        bar.progress(min(state["done"] / total, 1.0),
                     text=f"Generating demo data (first start only): {state['done']}/{total} people")
        if state["running"]:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 5:
            tail = DemoGeneration(folder).log_tail(20) or "(no log)"
            st.error(f"The demo generator stopped before finishing ({state['done']}/{total} people). Reload the page "
                     f"to resume it. Its log ends with:\n\n```\n{tail}\n```")
            st.stop()
        time.sleep(0.5)


def is_demo() -> bool:
    return not st.session_state.get("data_root", "").strip()


def data_root() -> str:
    return demo_root() if is_demo() else st.session_state["data_root"].strip()


@st.cache_data(max_entries=8, show_spinner="Indexing the data…")
def _index(root: str, lower: int, upper: int, corrections: str, stamp: float) -> DataIndex:
    from maskcls.data.corrections import load_corrections
    corr = load_corrections(corrections) if corrections != "none" else None
    return index_data(root, AgeBounds(lower, upper), corr)


def current_index() -> DataIndex | None:
    """The index of the data root in use, or None after showing why it cannot be used."""
    b = bounds()
    if b is None:
        return None
    try:
        root = data_root()
        corrections = st.session_state.get("corrections", "none")
        stamp = os.path.getmtime(corrections) if os.path.isfile(corrections) else 0.0  # a file the review edits
        return _index(root, b.lower, b.upper, corrections, stamp)
    except ValueError as e:
        st.error(f"Cannot use this data root. {markdown_escape(str(e))}")
        return None


def markdown_escape(text: str) -> str:
    """Text shown literally in Markdown: `<id>_<gender>` must not be read as HTML tags or emphasis."""
    return "".join("\\" + c if c in "\\`*_{}[]<>()#+!|~" else c for c in text)


def demo_banner() -> None:
    if is_demo():
        p = STUDIO_DEMO
        st.info(f"You are looking at **synthetic demo data** ({p['people']} generated people, {p['eval_people']} eval "
                f"people, drawn faces in the competition layout). Enter a data root in the sidebar to use real data.",
                icon=":material/science:")


def train_base(sent_key: str) -> tuple["object", str]:
    """(the base config for a ladder or sweep, where it came from): what the Train page sent here (`sent_key`),
    else the Train form as the user left it, else this device's default preset, on the sidebar's data root."""
    from maskcls.common.devices import has_gpu
    from maskcls.train.config import RunConfig, create_config
    for key, note in ((sent_key, "the Train form's values"), ("train_config", "the Train form as you left it")):
        sent = st.session_state.get(key)
        if sent:
            try:
                return RunConfig.from_dict({**sent, "data_root": data_root()}), note
            except ValueError:
                continue
    preset = "gpu-effnet" if has_gpu() else "demo-cpu"
    return (RunConfig.from_dict({**create_config(preset).to_dict(), "data_root": data_root()}),
            f"the {preset} preset (set the Train form, then **Use as ladder/sweep base** there)")


def rerun_fragment() -> None:
    """Rerun only the fragment that is running when Streamlit is rerunning it alone (a click inside it), the page
    otherwise: Streamlit refuses a fragment rerun asked for during a full run (AppTest runs every click that way)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    st.rerun(scope="fragment" if ctx is not None and ctx.fragment_ids_this_run else "app")
