"""benchmarks/gpu_recipe.sh --cpu-smoke: every step of issue 40's card run at toy sizes, so the card never meets a
typo (the card run itself needs a GPU machine)."""
import json
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_the_card_recipe_passes_end_to_end_on_the_cpu(tmp_path):
    out = tmp_path / "recipe"
    p = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_recipe.sh"), str(out), "--cpu-smoke"],
                       capture_output=True, text=True, timeout=1500)
    report = json.loads((out / "recipe.json").read_text())
    failed = [(s["step"], s["tail"][-400:]) for s in report["steps"] if not s["ok"]]
    assert p.returncode == 0 and not failed, failed or p.stdout[-2000:]
    steps = {s["step"]: s for s in report["steps"]}
    assert report["mode"] == "cpu-smoke" and report["passed"] == len(steps) == 18
    assert steps["faces over train + eval"]["faces_images_per_s"] > 0
    for name in ("bench train 64,48 eager", "bench train 64,48 compiled"):
        assert steps[name]["fast_img_per_s"] > 0 and steps[name]["fast_to_limit"] > 0
    for name in ("five-member submission, cold", "five-member submission, warm", "fold ensemble submission"):
        assert steps[name]["command_s"] > 0
    assert "verdict" in steps["compare the rungs"] and all(s["seconds"] > 0 for s in steps.values())
    assert (out / "five.csv").read_text().startswith("ImageID,ans")
