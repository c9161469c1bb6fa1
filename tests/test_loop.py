"""The competitor's loop on Home: the next step follows the runs root's state (issue 44)."""
import shutil

from conftest import app_test
from maskcls.common.fileio import write_json
from maskcls.common.runfolder import RunFolder
from maskcls.orchestration.loop import LOOP, next_step


def test_the_next_step_follows_the_state(tiny_run, demo_root, tmp_path):
    from maskcls.orchestration.submissions import SubmissionRequest, create_submission
    runs = tmp_path / "runs"
    assert next_step(runs)["page"] == "train"
    shutil.copytree(tiny_run[0] / tiny_run[1], runs / "done", ignore=shutil.ignore_patterns(".*.lock"))
    step = next_step(runs)
    assert step["page"] == "evaluate" and "done scored" in step["why"]
    create_submission(SubmissionRequest(str(demo_root), ["done"], "soft"), runs, "sub1").run_here()
    step = next_step(runs)
    assert step["page"] == "ensemble" and "sub1 has no public score" in step["why"]
    write_json(runs / "submissions" / "sub1" / "public.json", {"score": 0.5, "recorded": 0, "source": "typed"})
    assert next_step(runs)["page"] == "report"
    RunFolder(runs, "done").write_status(state="failed")
    assert next_step(runs)["page"] == "train"


def test_home_lists_the_loop_in_order_with_report_and_team(demo_root, tmp_path):
    at = app_test(runs_root=str(tmp_path / "runs"), data_root=str(demo_root))
    assert not at.exception
    assert any(i.value.startswith("**Next: Train**") for i in at.info)
    assert [k for k, _, _ in LOOP] == ["data", "augment", "train", "runs", "evaluate", "ensemble", "report"]
