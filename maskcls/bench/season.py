"""Speed budgets of a season of runs (issue 38) and of the wrap-up report (issue 39): thousands of runs made from
one, the Runs and Sweeps pages over them, the report over 50 runs and 2 ladders. Part of `maskcls bench budgets`."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path



def season_of_runs(work: Path, template: Path, n: int = 2000) -> list:
    """2,000 runs made from one run: the Runs table from the run index (warm) and rebuilt from every folder
    (cold), a filter, `runs list --json` as a process, and the Runs page itself (AppTest) warm."""
    from maskcls.bench.base import Budget, median_seconds
    from maskcls.orchestration.compare import runs_table
    from maskcls.orchestration.many_runs import make_runs
    from maskcls.orchestration.run_index import INDEX_FILE, filter_rows, index_rows, parse_where
    runs = work / "season"
    make_runs(template, runs, n)
    index = runs / INDEX_FILE

    def cold():
        index.unlink(missing_ok=True)
        runs_table(runs)
    t0 = time.perf_counter()
    cold()
    cold_s, t1, reads = time.perf_counter() - t0, time.perf_counter(), 1
    while (runs_table(runs)["state"] == "summarising").any():  # repeat groups' intervals fill in, read by read
        reads += 1
    print(f"  the repeat groups' intervals filled in over {reads} reads, {time.perf_counter() - t1:.1f} s")
    out = [Budget(f"Runs table, {n} runs, cold (the index built from every folder)", cold_s, 4, "s"), Budget(f"Runs table, {n} runs, warm (from the run index)", median_seconds(
                      lambda: runs_table(runs), 3), 1, "s")]
    where = parse_where(["model=efficientnet_b0", "lr=0.001"])
    out.append(Budget(f"a filter (config key = value) over {n} runs, table drawn", median_seconds(
        lambda: runs_table(runs, groups=False, rows=filter_rows(index_rows(runs), where=where)), 3), 0.5, "s"))
    cmd = [sys.executable, "-m", "maskcls", "runs", "list", "--runs-root", str(runs), "--json"]
    out.append(Budget(f"`maskcls runs list --json` over {n} runs, the whole process", median_seconds(
        lambda: subprocess.run(cmd, capture_output=True, check=True), 3), 0.5, "s"))
    home = Path(__file__).resolve().parent.parent / "dashboard" / "Home.py"
    if home.is_file():
        from streamlit.testing.v1 import AppTest

        def page(name: str, root: Path):
            at = AppTest.from_file(str(home), default_timeout=120)
            at.session_state["runs_root"] = str(root)
            at.run()
            at.switch_page(str(home.parent.parent / "pages" / name))
            at.run()
            assert not at.exception, at.exception
        out.append(Budget(f"Runs page over {n} runs, warm (AppTest, the whole page)", median_seconds(
            lambda: page("runs.py", runs), 3), 1, "s"))
        from maskcls.orchestration.many_runs import season_study
        season_study(work / "sweep-season", "big", 1000, str(work))
        out.append(Budget("Sweeps page, a 1,000-trial study, warm (AppTest, table and figures)", median_seconds(
            lambda: page("sweeps.py", work / "sweep-season"), 3), 3, "s"))
    return out


def report_time(work: Path, template: Path):
    """`maskcls report` (the library call, HTML and Markdown with PNGs) over 50 runs and 2 ladders of 3 rungs."""
    import os
    from dataclasses import asdict

    from maskcls.bench.base import Budget

    from maskcls.common.fileio import read_json, write_json
    from maskcls.orchestration.ladder import Ladder, ladder_path
    from maskcls.orchestration.many_runs import make_runs
    from maskcls.wrapup.document import ReportRequest
    from maskcls.wrapup.render import write_report
    runs = work / "report-runs"
    make_runs(template, runs, 50)
    for name in ("lad-a", "lad-b"):
        ladder = Ladder(name, read_json(template / "config.json"), "cumulative",
                        [{"name": f"step {i}", "set": {"lr": 1e-3 * (i + 2)}} for i in range(2)], seeds=1)
        write_json(ladder_path(runs, name), asdict(ladder))
        for run_name, _ in ladder.planned():
            (runs / run_name).mkdir()
            for f in template.iterdir():
                if f.is_file():
                    os.link(f, runs / run_name / f.name)
    request = ReportRequest(ladders=["lad-a", "lad-b"], compares=["run-00018:run-00038"])
    t0 = time.perf_counter()
    write_report(runs, request, work / "report.html")
    return Budget("wrap-up report, 50 runs and 2 ladders (HTML + Markdown with PNGs)", time.perf_counter() - t0,
                  10, "s")
