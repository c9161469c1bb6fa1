"""The wrap-up report from the demo's runs (2 runs, a 2-rung ladder, a submission): every section, every macro F1
with its interval, no request to any host (Chromium with the network blocked draws every chart), Markdown PNGs."""
import json
import re
import shutil
from dataclasses import asdict

import pytest

from conftest import ARTIFACTS, chromium_page, needs_chromium, run_cli
from maskcls.common.fileio import write_json
from maskcls.common.runfolder import RunFolder
from maskcls.wrapup.document import SECTIONS


@pytest.fixture(scope="module")
def season(tiny_run, demo_root, tmp_path_factory):
    """A runs root with base, other (lr 0.002), the ladder `lad` (2 rungs, 1 seed) and the submission `sub1`."""
    from maskcls.orchestration.ladder import Ladder, ladder_path
    from maskcls.orchestration.submissions import SubmissionRequest, create_submission
    runs = tmp_path_factory.mktemp("report") / "runs"
    src = tiny_run[0] / tiny_run[1]
    base_cfg = json.loads((src / "config.json").read_text())
    ladder = Ladder("lad", base_cfg, "cumulative", [{"name": "lr up", "set": {"lr": 0.002}}], seeds=1)
    names = ["base", "other"] + [n for n, _ in ladder.planned()]
    for n in names:
        shutil.copytree(src, runs / n, ignore=shutil.ignore_patterns(".*.lock"))
    other = RunFolder(runs, "other")
    write_json(other.config_path, {**other.read_config(), "lr": 0.002})
    write_json(ladder_path(runs, "lad"), asdict(ladder))
    create_submission(SubmissionRequest(str(demo_root), ["base", "other"], "soft"), runs, "sub1").run_here()
    return runs


def test_the_report_holds_every_section_and_every_f1_has_its_interval(season, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("## Ladders\nThe lr step was our first try.\n")
    out = tmp_path / "report.html"
    code, stdout, err = run_cli(capsys, "report", "--ladder", "lad", "--compare", "base:other", "--submission", "sub1",
                                "--notes", notes, "--out", out, "--json", "--runs-root", season)
    assert code == 0, err
    result = json.loads(stdout)
    page = out.read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    assert "The lr step was our first try." in page
    text = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    text = re.sub(r"<div>\s*<div id=.*?</script>\s*</div>", "", text, flags=re.S)  # the figures' JSON
    figures = re.findall(r"macro F1([^<\d]{0,40})(\d\.\d{4})(.{0,3})", text)  # a figure, or an interval's bound
    assert figures and all(before.endswith("[") or after.startswith(" [") for before, _, after in figures), figures
    f1_cells = 0
    for table in re.findall(r"<table.*?</table>", text, flags=re.S):
        heads = re.findall(r"<th>(.*?)</th>", table)
        for row in re.findall(r"<tr>\s*(<td>.*?)</tr>", table, flags=re.S):
            for head, cell in zip(heads, re.findall(r"<td>(.*?)</td>", row, flags=re.S)):
                if "macro F1" in head and cell != "-":
                    f1_cells += 1
                    assert re.fullmatch(r"\d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\]", cell), (head, cell)
    assert f1_cells >= 2 + 4 + 1  # the experiments (4 runs), the ladder's 2 rungs, the submission's demo score
    assert "reproduce: maskcls ablate status lad --json" in page and "reproduce: maskcls compare base other" in page
    assert result["bytes"] <= 15e6
    assert result["figures"] and all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in result["figures"])
    md = (tmp_path / "report.md").read_text()
    assert all(f"## {t}" in md for t in SECTIONS) and "report_figures/" in md


def test_report_refuses_what_it_cannot_build(season, tmp_path, capsys):
    code, _, err = run_cli(capsys, "report", "--runs", "nope", "--out", tmp_path / "r.html", "--runs-root", season)
    assert code == 2 and "no finished run with a validation F1 named 'nope'" in err
    code, _, err = run_cli(capsys, "report", "--compare", "base", "--out", tmp_path / "r.html", "--runs-root", season)
    assert code == 2 and "--compare is A:B" in err
    code, _, err = run_cli(capsys, "report", "--out", tmp_path / "r.pdf", "--runs-root", season)
    assert code == 2 and "expected an .html file name" in err
    bad = tmp_path / "n.md"
    bad.write_text("## Results\nx\n")
    code, _, err = run_cli(capsys, "report", "--notes", bad, "--out", tmp_path / "r.html", "--runs-root", season)
    assert code == 2 and "no section 'Results'" in err


@pytest.mark.browser
@needs_chromium
def test_the_report_renders_offline(season, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert run_cli(capsys, "report", "--ladder", "lad", "--compare", "base:other", "--no-markdown", "--out", out,
                   "--runs-root", season)[0] == 0
    page_text = out.read_text()
    n_figures = page_text.count('class="plotly-graph-div"')
    assert n_figures >= 6 and "data:image/png;base64," in page_text  # charts, and the worst errors' Grad-CAM
    asked = []
    with chromium_page(1200, 900) as page:
        def block(route):
            asked.append(route.request.url)
            route.abort()
        page.route(re.compile(r"^https?://"), block)  # the network is gone: the file must not need it
        page.goto(out.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.plot-container .main-svg').length >= {n_figures}",
                               timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=False)
        page.get_by_text("most confident errors").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "report-gradcam.png"))
    assert asked == []


def test_the_report_page_builds_with_a_ladder_and_a_note(season):
    from conftest import app_test
    at = app_test("pages/report.py", runs_root=str(season))
    assert not at.exception, at.exception
    at.multiselect(key="report_ladders").select("lad").run()
    at.text_area(key="report_note_Ladders").input("We tried a larger learning rate.").run()
    at.button(key="report_build").click().run()
    assert not at.exception, at.exception
    assert any("Built: 8 sections" in s.value for s in at.success)
    page = at.session_state["report_built"]["page"]
    assert "We tried a larger learning rate." in page and "Ladder lad (cumulative" in page


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_the_report_page_in_a_browser_pick_a_ladder_note_download_open(season, studio_demo, tmp_path):
    import os

    from conftest import running_studio, shot, wait_idle
    with running_studio(MASKCLS_RUNS=str(season), MASKCLS_CACHE=os.environ["MASKCLS_CACHE"]) as (url, _), \
            chromium_page(1300, 1100) as page:
        page.goto(url + "/report")
        wait_idle(page)
        page.get_by_role("combobox", name="Ladders").click()
        page.get_by_role("option", name="lad", exact=True).click()
        page.keyboard.press("Escape")
        wait_idle(page)
        page.get_by_text("Notes: the team's own words").click()
        note = page.get_by_role("textbox", name="Ladders")
        note.fill("The lr step did not pay on 12 people.")
        note.press("Control+Enter")
        wait_idle(page)
        page.get_by_role("button", name="Build the report").click()
        wait_idle(page)
        page.get_by_text("Built: 8 sections").wait_for(timeout=120_000)
        shot(page, "report-page")
        with page.expect_download() as got:
            page.get_by_role("button", name="Download report.html").click()
        saved = tmp_path / "downloaded.html"
        got.value.save_as(saved)
    text = saved.read_text()
    assert "The lr step did not pay on 12 people." in text and "Ladder lad (cumulative" in text
    with chromium_page(1200, 900) as page:  # the downloaded file opens, offline
        asked = []
        page.route(re.compile(r"^https?://"), lambda route: (asked.append(route.request.url), route.abort()))
        page.goto(saved.as_uri())
        page.wait_for_function("document.querySelectorAll('.plot-container .main-svg').length >= 5", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "report-downloaded.png"))
    assert asked == []


@pytest.mark.slow
def test_the_report_builds_with_every_state_the_studio_makes(season, demo_root, tmp_path, capsys):
    """Issue 44: after one accepted correction the report said "Not built: invalid corrections name ...". Accepted
    corrections, a pulled run, a cancelled run, a run without predictions and a recorded public score: it builds,
    names what it skips, and shows the leaderboard log."""
    from maskcls.data.corrections import decide
    from maskcls.data.labels import AgeBounds
    from maskcls.orchestration.team.verify import verify_pulled
    runs = tmp_path / "runs"
    shutil.copytree(season, runs, ignore=shutil.ignore_patterns(".*.lock"))
    person = RunFolder(runs, "base").read_predictions()["person_id"].iloc[0]
    decide(runs / "corrections" / "reviewed.csv", accept=[{"id": person, "gender": "female", "note": "looked"}])
    partial = runs / "team" / "alice" / ".x.partial"
    shutil.copytree(runs / "base", partial)
    checked = verify_pulled(partial, data_root=str(demo_root), corrections="none", bounds=AgeBounds(30, 60),
                            cfg={**json.loads((partial / "config.json").read_text()), "data_root": str(demo_root)})
    write_json(partial / ".team.json", {"member": "alice", "run": "x", "version": "v1", **checked})
    partial.rename(runs / "team" / "alice" / "x")
    shutil.copytree(runs / "base", runs / "stopped")
    RunFolder(runs, "stopped").write_status(state="cancelled", error="cancelled (SIGTERM)")
    shutil.copytree(runs / "base", runs / "no-preds")
    (runs / "no-preds" / "val_predictions.csv").unlink()
    assert run_cli(capsys, "submissions", "score", "sub1", "0.5", "--device", "cpu", "--runs-root", runs)[0] == 0
    out = tmp_path / "r.html"
    code, stdout, err = run_cli(capsys, "report", "--out", out, "--runs-root", runs)
    html = out.read_text()
    assert code == 0, err
    assert "reviewed" in html and "alice/x" in html and "Leaderboard log" in html and "Final: <b>sub1</b>" in html
    assert "no-preds (no validation predictions)" in html or "no-preds" in html
    md = (tmp_path / "r.md").read_text()
    assert "Leaderboard log" in md and "| reviewed |" in md
