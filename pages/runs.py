"""Runs page: every run (and repeat group) in one sortable table with its interval; curves and config differences;
is B better than A; delete with care."""
import os

import pandas as pd
import streamlit as st

import ui  # noqa: F401  (sets up the import path and session defaults)
from maskcls.wrapup import charts
from maskcls.data.labels import class_names
from maskcls.orchestration.compare import compare_refs, config_diff, curves_figure, delete_run, runs_display, runs_table
from maskcls.orchestration.folds import list_oof
from maskcls.orchestration.repeats import list_repeat_groups
from maskcls.orchestration.prune import disk_use, plan_prune, prune
from maskcls.orchestration.run_index import KINDS, filter_rows, index_tables, parse_where, split_filters
from maskcls.common.runfolder import damaged_folders
from maskcls.common.settings import TEAM_ENV
from maskcls.orchestration.team.store import TeamStore
from maskcls.orchestration.team.pull import pull_any
from maskcls.orchestration.team.records import team_group_rows, team_rows
from maskcls.orchestration.groups import pulled_groups
from maskcls.train.comparison import explain, verdict_kind

st.title("Runs")
runs_root = st.session_state.get("runs_root") or ui.DEFAULTS["runs_root"]
rows, group_rows = index_tables(runs_root)  # one read of the index for the whole draw
if not rows:
    st.info(f"No runs in {runs_root} yet: launch one on the Train page.")
    st.stop()
c = st.columns([2, 2, 2, 3, 2])
text = c[0].text_input("Find", key="runs_find", placeholder="part of a name")
states = c[1].multiselect("State", sorted({r["state"] for r in rows}), key="runs_states", placeholder="any")
kinds = c[2].multiselect("Group", [k for k in KINDS if any(r["kind"] == k for r in rows)], key="runs_kinds",
                         placeholder="any", help="sweep trials, ladder rungs, repeat seeds, folds, teammates' runs")
where_text = c[3].text_input("Config", key="runs_where", placeholder="model=resnet18, image_size=[64,48]",
                             help="config KEY=VALUE, several separated by commas; lists as JSON, e.g. "
                                  "image_size=[224,224]")
f1 = c[4].slider("Best macro F1", 0.0, 1.0, (0.0, 1.0), 0.01, key="runs_f1")
try:
    where = parse_where(split_filters(where_text))
except ValueError as e:
    st.error(str(e))
    where = {}
filtering = bool(text or states or kinds or where or f1 != (0.0, 1.0))
kept = filter_rows(rows, text=text, states=states, kinds=kinds, where=where,
                   f1=f1 if f1 != (0.0, 1.0) else None)
table = runs_table(runs_root, groups=not filtering, rows=kept, group_rows=group_rows)
st.caption(f"{len(kept)} of {len(rows)} runs" + (" (repeat groups show when no filter is set)" if filtering else ""))
damaged = damaged_folders(runs_root)
if damaged:
    st.warning("Damaged run folders, not listed: " + "; ".join(f"{n} ({why})" for n, why in damaged))
if table.empty:
    st.info("No run matches these filters.")
st.dataframe(runs_display(table), hide_index=True, width="stretch", key="runs_table",
             column_config={"best macro F1": st.column_config.NumberColumn(format="%.4f"),
                            "F1 low": st.column_config.NumberColumn(format="%.4f", help="95 % interval over people"),
                            "F1 high": st.column_config.NumberColumn(format="%.4f", help="95 % interval over people"),
                            "F1 selection-free": st.column_config.NumberColumn(
                                format="%.4f", help="the best epoch was chosen on the validation people, so its F1 "
                                                    "leans high; this one chose the epoch on half the people and "
                                                    "scored the other half (both ways)"),
                            "seed sd": st.column_config.NumberColumn(format="%.4f", help="spread over seeds"),
                            "best accuracy": st.column_config.NumberColumn(format="%.4f")})

@st.cache_data(ttl=10, show_spinner="Asking the team store…")
def team_table(uri: str, root: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The store's runs, its groups' refs (pulled as a whole) and what could not be shown."""
    skipped: list[str] = []
    store = TeamStore.connect(uri)
    rows = team_rows(store, root, skipped)
    return pd.DataFrame(rows), [g["ref"] for g in team_group_rows(store, skipped)], skipped


with st.expander("Team", expanded=bool(os.environ.get(TEAM_ENV))):
    uri = os.environ.get(TEAM_ENV, "")
    if not uri:
        st.caption(f"Every member's runs show here once {TEAM_ENV} names the team store (README: Working as a team).")
    else:
        try:
            team, team_groups, skipped = team_table(uri, str(runs_root))
        except ValueError as e:
            st.error(str(e))
            team, team_groups, skipped = pd.DataFrame(), [], []
        for line in skipped:
            st.warning(f"A record of the team store is not shown: {line}")
        if team.empty:
            st.info("The team store holds no runs yet: `maskcls team push RUN`.")
        else:
            members = st.multiselect("Members", sorted(team["member"].unique()), key="runs_team_members",
                                     placeholder="every member")
            shown = team[team["member"].isin(members)] if members else team
            st.dataframe(shown.drop(columns=["ref", "complete"]), hide_index=True, width="stretch",
                         key="runs_team_table",
                         column_config={k: st.column_config.NumberColumn(format="%.4f") for k in
                                        ("macro_f1", "f1_low", "f1_high")})
            c = st.columns([3, 1])
            picks = shown["ref"].tolist() + [g for g in team_groups if not members or g.split("/")[0] in members]
            ref = c[0].selectbox("Teammate's run or group", picks, key="runs_team_pick",
                                 help="a group (repeat or fold) is pulled whole: every run, and its out-of-fold table")
            if c[1].button("Pull", key="runs_team_pull", icon=":material/download:"):
                try:
                    pull_any(TeamStore.connect(uri), runs_root, ref)
                    team_table.clear()
                    st.session_state["runs_team_pulled"] = ref
                    st.rerun()
                except ValueError as e:
                    st.error(f"Not pulled: {e}")
            if st.session_state.get("runs_team_pulled"):
                st.success(f"Pulled {st.session_state['runs_team_pulled']}: it is in the runs table above and in every "
                           f"run picker (read-only).")

st.subheader("Is B better than A?")
refs = [n for n in table["name"] if " (repeat of " not in n]  # what the filters kept first, then the rest
refs += [g for g in list_repeat_groups(runs_root) + list_oof(runs_root) + pulled_groups(runs_root)
         if not filtering or text.lower() in g.lower()]
refs += [r["name"] for r in rows if r["name"] not in set(refs)]
c = st.columns([2, 2, 1])
a = c[0].selectbox("A", refs, index=0, key="runs_cmp_a")
b = c[1].selectbox("B", refs, index=min(1, len(refs) - 1), key="runs_cmp_b")
if c[2].button("Compare", key="runs_cmp", type="primary", disabled=not refs):
    try:
        st.session_state["runs_cmp_result"] = compare_refs(runs_root, a, b)
    except ValueError as e:
        st.error(str(e))
result = st.session_state.get("runs_cmp_result")
if result and (result["a"], result["b"]) == (a, b):
    {"better": st.success, "worse": st.warning}.get(verdict_kind(result), st.info)(result["verdict"])
    st.caption(("Paired: both were validated on the same people, so the people's own variation cancels out. " if
                result["paired"] else f"Unpaired: {result['note']}. ")
               + f"A = {result['a_is']}, B = {result['b_is']}; interval and p from one jackknife-t over people"
               + (" and seeds." if result["claim"] == "configs" else "."))
    for line in explain(result):
        (st.warning if line.startswith("claim: about these two trained models") else st.caption)(line)
    st.plotly_chart(charts.class_difference_figure(result["per_class"], class_names()), width="stretch",
                    key="runs_cmp_classes")

names = [n for n in table["name"] if " (repeat of " not in n]
all_names = [r["name"] for r in rows]
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

if "runs_pruned" in st.session_state:
    st.session_state["runs_disk"] = True
if st.toggle("Disk use and prune", key="runs_disk", help="each run's size is in the table; this reads every "
             "finished run's checkpoints to say what a prune would remove and what it keeps"):
    pruned = st.session_state.pop("runs_pruned", None)
    if pruned:
        st.success(pruned)
    plan = plan_prune(runs_root, keep_best=int(st.session_state.get("runs_keep_best", 0)))
    use = disk_use(runs_root, plan)
    m = st.columns(4)
    m[0].metric("Runs use", f"{use['total_mb'] / 1e3:.2f} GB")
    m[1].metric("A prune frees", f"{use['prunable_mb'] / 1e3:.2f} GB")
    m[2].metric("Free on this disk", f"{use['free_mb'] / 1e3:.1f} GB")
    m[3].metric("Disk", f"{use['disk_mb'] / 1e3:.0f} GB")
    keep_best = st.number_input("Leave the K best finished runs whole", 0, 1000, 0, key="runs_keep_best")
    if plan.remove:
        st.dataframe(pd.DataFrame(plan.remove, columns=["run", "file", "bytes"]), hide_index=True, height=180,
                     key="runs_prune_plan")
    if plan.keep:
        st.caption("Kept: " + "; ".join(f"{r}/{f}: {why}" if f != "*" else f"{r}: {why}" for r, f, why in
                                         plan.keep[:20]) + (" ..." if len(plan.keep) > 20 else ""))
    sure = st.checkbox(f"Yes, remove these {len(plan.remove)} checkpoint files ({plan.bytes / 1e6:.0f} MB)",
                       key="runs_prune_sure", disabled=not plan.remove)
    if st.button("Prune", disabled=not (sure and plan.remove), key="runs_prune"):
        done = prune(runs_root, keep_best=int(keep_best))
        st.session_state.pop("runs_prune_sure", None)
        st.session_state["runs_pruned"] = f"Removed {len(done.remove)} files ({done.bytes / 1e6:.0f} MB)."
        st.rerun()

with st.expander("Delete a run", expanded="runs_deleted" in st.session_state):
    deleted = st.session_state.pop("runs_deleted", None)
    if deleted:
        st.success(f"Deleted {deleted} and all its checkpoints.")
    round_ = st.session_state.get("runs_delete_round", 0)  # a new box after each delete: nothing carries over
    victim = st.selectbox("Run", [n for n in all_names if "/" not in n], index=None, placeholder="Choose the run to delete",
                          key=f"runs_delete_pick_{round_}")
    if victim:
        sure_key = f"runs_delete_sure_{victim}"  # a confirmation belongs to the run it names, never to another
        sure = st.checkbox(f"Yes, delete {victim} and all its checkpoints", key=sure_key)
        if st.button(f"Delete {victim}", disabled=not sure, key="runs_delete"):
            try:
                delete_run(runs_root, victim)
            except ValueError as e:
                st.error(str(e))
            else:
                st.session_state.pop(sure_key, None)
                st.session_state["runs_delete_round"] = round_ + 1
                st.session_state["runs_deleted"] = victim
                st.rerun()
