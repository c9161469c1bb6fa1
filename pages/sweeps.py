"""Sweeps page: an Optuna study over the Train form's config; workers as background jobs; trials live."""
import json

import pandas as pd
import streamlit as st

import ui
from maskcls.common.jobfolder import ACTIVE
from maskcls.orchestration import sweeps
from maskcls.train.config import RunConfig

EXAMPLE_SPACE = {"lr": {"type": "log_float", "low": 0.0003, "high": 0.01},
                 "loss": {"type": "categorical", "choices": ["ce", "focal", "smooth"]}}

st.title("Sweeps")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]


with st.expander("New sweep", expanded=not sweeps.list_sweeps(runs_root)):
    base, base_note = ui.train_base("sweep_base")
    st.caption(f"Base config: {base_note} · model {base.model}, {base.epochs} epochs, lr {base.lr:g}")
    with st.form("sweep_form"):
        c = st.columns(4)
        name = c[0].text_input("Sweep name", key="sweep_name", placeholder="e.g. lr-and-loss")
        sampler = c[1].selectbox("Sampler", sweeps.SAMPLERS, key="sweep_sampler",
                                 help="tpe learns from finished trials; grid walks every combination")
        pruner = c[2].selectbox("Pruner", sweeps.PRUNERS, key="sweep_pruner",
                                help="median: stop a trial whose F1 is below the median of earlier trials at that epoch")
        total = c[3].number_input("Trials in all (0 = no limit)", 0, 1000, 8, key="sweep_total")
        epochs = st.number_input("Epochs per trial", 1, 500, int(base.epochs), key="sweep_epochs")
        space_text = st.text_area("Search space (JSON: run-config keys and their ranges)", key="sweep_space",
                                  value=json.dumps(EXAMPLE_SPACE, indent=1), height=160,
                                  help="types: categorical (choices), int / float (low, high, step), log_float")
        create = st.form_submit_button("Create sweep", type="primary", icon=":material/tune:")
    if create:
        try:
            space = json.loads(space_text)
            cfg = RunConfig.from_dict({**base.to_dict(), "epochs": int(epochs)})
            made = sweeps.create_sweep(runs_root, name.strip(), cfg, space, sampler=sampler, pruner=pruner, total=int(total))
            st.session_state["sweep_pick"] = made.name
            st.success(f"Created sweep **{made.name}**: start workers below.")
        except json.JSONDecodeError as e:
            st.error(f"Not created: the search space is not valid JSON ({e.msg} at line {e.lineno})")
        except ValueError as e:
            st.error(f"Not created: {e}")

names = [s["name"] for s in sweeps.list_sweeps(runs_root)]
if not names:
    st.info(f"No sweeps in {runs_root} yet: create one above.")
    st.stop()
if st.session_state.get("sweep_pick") not in names:
    st.session_state["sweep_pick"] = names[-1]
pick = st.selectbox("Sweep", names, key="sweep_pick")
try:
    sweep = sweeps.load_sweep(runs_root, pick)
except ValueError as e:
    st.error(str(e))
    st.stop()
st.caption(f"{', '.join(sorted(sweep.space))} · sampler {sweep.sampler} · pruner {sweep.pruner} · "
           f"{sweep.total or 'no limit on'} trials · storage "
           f"{sweeps.shown_url(sweep.storage) if sweep.storage else 'SQLite in the runs root'}")

c = st.columns([1, 1, 2])
n_workers = c[0].number_input("Workers", 1, 8, 1, key="sweep_workers")
per_worker = c[1].number_input("Trials per worker", 1, 1000, max(1, sweep.total or 4), key="sweep_per_worker")
if c[2].button("Start workers", icon=":material/play_arrow:", key="sweep_start"):
    try:
        started = [sweeps.start_worker(runs_root, pick, int(per_worker)).name for _ in range(int(n_workers))]
        st.toast(f"started {', '.join(started)}")
    except ValueError as e:
        st.error(f"Not started: {e}")


def trials_frame(table: pd.DataFrame) -> pd.DataFrame:
    """One column per parameter, for reading and sorting."""
    params = pd.DataFrame(table["params"].tolist(), index=table.index)
    return pd.concat([table.drop(columns=["params"]), params], axis=1)


@st.fragment(run_every=3.0)
def live() -> None:
    """Workers, trials and figures, refreshed every 3 s while the page is open."""
    workers = sweeps.list_workers(runs_root, pick)
    if workers:
        st.dataframe(pd.DataFrame([{"worker": w["name"], "state": w["state"], "trials": w.get("trials"),
                                    "ran": w.get("trials_run", ""), "error": w.get("error") or ""} for w in workers]),
                     hide_index=True, width="stretch", key="sweep_workers_table")
        active = [w["name"] for w in workers if w["state"] in ACTIVE]
        if active:
            w = st.selectbox("Worker", active, key="sweep_cancel_pick")
            if st.button(f"Cancel {w}", key="sweep_cancel"):
                try:
                    sweeps.WorkerFolder(runs_root, pick, w).cancel()
                    st.toast(f"{w} cancelled")
                except ValueError as e:
                    st.error(str(e))
    try:
        study = sweeps.open_study(runs_root, sweep)  # once per refresh, for the table and the figures
        table = sweeps.trials_table(runs_root, pick, study=study)
    except ValueError as e:
        st.error(str(e))
        return
    if table.empty:
        st.info("No trials yet: start a worker.")
        return
    st.subheader(f"Trials ({len(table)})")
    st.dataframe(trials_frame(table), hide_index=True, width="stretch", key="sweep_trials",
                 column_config={"best_f1": st.column_config.NumberColumn("best F1", format="%.4f"),
                                "f1_low": st.column_config.NumberColumn("F1 low", format="%.4f",
                                                                        help="95 % interval over validation people"),
                                "f1_high": st.column_config.NumberColumn("F1 high", format="%.4f")})
    figures = sweeps.sweep_figures(runs_root, pick, study=study)
    titles = {"history": "Best so far", "parallel": "Parallel coordinates", "importances": "Parameter importances",
              "intermediate": "F1 per epoch (pruned trials stop early)"}
    cols = st.columns(2)
    for i, (key, fig) in enumerate(figures.items()):
        with cols[i % 2]:
            st.markdown(f"**{titles[key]}**")
            st.plotly_chart(fig, width="stretch", key=f"sweep_fig_{key}")


live()
if st.button("Use the best trial's config in the Train form", icon=":material/content_copy:", key="sweep_use_best"):
    try:
        number, cfg = sweeps.best_trial_config(runs_root, pick)
        st.session_state["train_prefill"] = cfg.to_dict()
        st.session_state["train_prefill_note"] = f"from sweep {pick}, trial {number}"
        st.switch_page(str(ui.REPO / "pages" / "train.py"))
    except ValueError as e:
        st.error(str(e))
