"""Acceptance: the demo-cpu preset trains on the studio's demo data and reaches a validation macro F1 of at least
0.80. Its 4-minute time budget is measured by `maskcls bench budgets --slow`, not asserted here."""
import json
import subprocess
import sys
import time

from conftest import REPO
from maskcls.train.rundir import RunDir


def test_demo_cpu_preset_reaches_f1_080(studio_demo, tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "maskcls", "train", "--data", str(studio_demo), "--preset", "demo-cpu",
                           "--name", "demo", "--runs-root", str(tmp_path / "runs"),
                           "--set", f"cache_dir={tmp_path / 'cache'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = json.loads(proc.stdout.strip().splitlines()[-1])["best_f1"]
    print(f"demo-cpu: {seconds:.0f} s, best validation macro F1 {best:.4f}")
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    (REPO / "test-artifacts" / "demo-cpu.json").write_text(json.dumps({"seconds": seconds, "best_f1": best}))
    assert RunDir(tmp_path / "runs", "demo").read_status()["state"] == "completed"
    assert best >= 0.80, f"best validation macro F1 {best:.4f}"
