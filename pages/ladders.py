"""Ladders page: which step of a recipe pays? Create an ablation ladder, start workers, watch the waterfall of gains
with their intervals, and click a step to see the classes it moved."""
import json

import pandas as pd
import streamlit as st

import ui
from maskcls.wrapup import charts
from maskcls.common.jobfolder import ACTIVE
from maskcls.data.labels import class_names
from maskcls.orchestration.ladder import PRESET_DIR, create_ladder, list_ladders
from maskcls.orchestration.ladder_report import ladder_status
from maskcls.orchestration.ladder_worker import list_workers, start_worker
from maskcls.train.config import RunConfig

st.title("Ladders")
st.caption("An ablation ladder trains one run (or a repeat group of seeds) per rung and gives each step its gain over "
           "the rung before, paired over the same validation people, with a 95 % interval and a verdict.")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]

with st.expander("New ladder", expanded=not list_ladders(runs_root)):
    base, base_note = ui.train_base("ladder_base")
    st.caption(f"Base config: {base_note} · model {base.model}, {base.epochs} epochs, lr {base.lr:g}")
    with st.form("ladder_form"):
        c = st.columns(4)
        name = c[0].text_input("Ladder name", key="ladder_name", placeholder="e.g. winners")
        seeds = c[1].number_input("Seeds per rung", 1, 20, 3, key="ladder_seeds",
                                  help="3 or more: a step's verdict then covers the seeds' spread; with 1 it compares "
                                       "two single trainings and cannot separate a step from seed noise")
        epochs = c[2].number_input("Epochs per run", 1, 500, int(base.epochs), key="ladder_epochs")
        steps_text = st.text_area("Steps (JSON)", key="ladder_steps", height=220,
                                  value=(PRESET_DIR / "winners-2022.json").read_text(),
                                  help='{"mode": "cumulative" or "leave-one-out", "steps": [{"name": ..., "set": '
                                       '{config key: value}}]}; the base is the config named above')
        made = st.form_submit_button("Create ladder", type="primary", icon=":material/stairs:")
    if made:
        try:
            cfg = RunConfig.from_dict({**base.to_dict(), "epochs": int(epochs)})
            ladder = create_ladder(runs_root, name.strip(), cfg, json.loads(steps_text), seeds=int(seeds))
            st.session_state["ladder_pick"] = ladder.name
            st.success(f"Created ladder **{ladder.name}**: {len(ladder.planned())} runs; start a worker below.")
        except json.JSONDecodeError as e:
            st.error(f"Not created: the steps are not valid JSON ({e.msg} at line {e.lineno})")
        except ValueError as e:
            st.error(f"Not created: {e}")

names = list_ladders(runs_root)
if not names:
    st.info(f"No ladders in {runs_root} yet: create one above.")
    st.stop()
if st.session_state.get("ladder_pick") not in names:
    st.session_state["ladder_pick"] = names[-1]
pick = st.selectbox("Ladder", names, key="ladder_pick")
if st.button("Start a worker", icon=":material/play_arrow:", key="ladder_start"):
    try:
        st.toast(f"started {start_worker(runs_root, pick).name}")
    except ValueError as e:
        st.error(f"Not started: {e}")


def picked_step(point: dict) -> int:
    """The clicked bar's step index, from its customdata (or its position when the event gives no customdata)."""
    data = point.get("customdata")
    if isinstance(data, (list, tuple)) and data:
        return int(data[0])
    return int(point.get("point_index", point.get("point_number", 0)))


@st.fragment(run_every=3.0)
def live() -> None:
    """Workers, rungs and the waterfall, refreshed every 3 s while the page is open."""
    workers = list_workers(runs_root, pick)
    if workers:
        st.caption(" · ".join(f"{w['name']}: {w['state']}" for w in workers))
    try:
        status = ladder_status(runs_root, pick)
    except ValueError as e:
        st.error(str(e))
        return
    if status["caution"]:
        st.warning(f"This ladder has {status['caution']}.")
    st.dataframe(pd.DataFrame([{"rung": r["rung"], "step": r["step"], "macro F1": r["macro_f1"],
                                "F1 low": (r["interval"] or [None, None])[0], "F1 high": (r["interval"] or [None, None])[1],
                                "runs": ", ".join(f"{n}: {s}" for n, s in r["runs"].items())} for r in status["rungs"]]),
                 hide_index=True, width="stretch", key="ladder_rungs",
                 column_config={k: st.column_config.NumberColumn(format="%.4f") for k in ("macro F1", "F1 low",
                                                                                           "F1 high")})
    scored = [s for s in status["steps"] if "gain" in s]
    if not scored:
        st.info("The gains appear as the rungs' runs complete." if any(w["state"] in ACTIVE for w in workers) else
                "No step scored yet: start a worker.")
        return
    event = st.plotly_chart(charts.waterfall_figure(status["steps"], status["rungs"][0]["macro_f1"]),
                            width="stretch", on_select="rerun", selection_mode="points", key="ladder_waterfall")
    points = ((event or {}).get("selection") or {}).get("points") or []
    chosen = scored[picked_step(points[0])] if points else None
    st.dataframe(pd.DataFrame([{"step": s["step"], "verdict": s["verdict"], "gain": s["gain"],
                                "low": (s["interval"] or [None, None])[0], "high": (s["interval"] or [None, None])[1],
                                "p": s["p_value"]}
                               for s in scored]), hide_index=True, width="stretch", key="ladder_gains")
    if chosen:
        st.markdown(f"**{chosen['step']}**: {chosen['line']}")
        st.dataframe(pd.DataFrame([{"class": f"{m['class']}: {class_names()[m['class']]}",
                                    "F1 change": m["difference"], "low": m["interval"][0], "high": m["interval"][1]}
                                   for m in chosen["moved"]]), hide_index=True, key="ladder_moved")
    else:
        st.caption("Click a bar to see the classes that step moved most.")


live()
