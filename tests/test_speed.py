"""Speed budgets of the studio on this 2-core machine (each prints its figure)."""
import io
import statistics
import time

import numpy as np
import torch

import pytest

from conftest import app_test
from maskcls.augment.spec import create_preset
from maskcls.data.index import index_data
from maskcls.augment.preview import load_source, preview_draws


def other_maskcls_processes() -> list[int]:
    """Job processes that earlier tests started and that may still be exiting."""
    import os
    from pathlib import Path
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"maskcls" in args and int(cmdline.parent.name) != os.getpid():
            found.append(int(cmdline.parent.name))
    return found


@pytest.fixture(autouse=True)
def quiet_machine():
    """Budgets are for a machine that is not also finishing another test's job: wait for those to end."""
    deadline = time.time() + 60
    while other_maskcls_processes() and time.time() < deadline:
        time.sleep(0.2)


def median_time(fn, n=5):
    fn()  # warm-up: the budget is for a rerender in a running studio, not the first one
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_preview_of_8_draws_at_384x512_within_300ms(studio_demo):
    from PIL import Image
    spec = create_preset("strong")
    path = index_data(studio_demo).train["path"].iloc[0]
    source = load_source(path, spec)
    assert source.shape == (512, 384, 3)

    def rerender(seed=[0]):
        seed[0] += 1
        draws, _, _ = preview_draws(source, spec, 8, seed[0])
        for d in [source] + draws:  # what st.image does with each array: encode it
            Image.fromarray(d).save(io.BytesIO(), format="JPEG", quality=90)
    seconds = median_time(rerender)
    print(f"preview: 8 draws at 384x512 + encoding in {seconds * 1000:.0f} ms")
    assert seconds <= 0.3


def test_gradcam_overlay_of_efficientnet_b0_at_224_within_300ms(studio_demo):
    from maskcls.models.cam import compute_cam, overlay
    from maskcls.models.backbones import create_model
    from maskcls.data.imageio import load_preprocessed
    torch.manual_seed(0)
    model, _ = create_model("efficientnet_b0")
    model.eval()
    pixels = load_preprocessed(index_data(studio_demo).train["path"].iloc[0], (224, 224))
    spec = create_preset("baseline")
    overlay(pixels, compute_cam(model, pixels, spec, 3))  # warm-up
    seconds = median_time(lambda: overlay(pixels, compute_cam(model, pixels, spec, 3)))
    print(f"Grad-CAM overlay, efficientnet_b0 at 224: {seconds * 1000:.0f} ms")
    assert seconds <= 0.3


def test_evaluate_page_renders_3780_saved_predictions_within_1s(studio_demo, tmp_path):
    from maskcls.common.fileio import write_text
    from maskcls.train.rundir import RunDir, predictions_frame, save_checkpoint
    from maskcls.train.config import RunConfig
    from maskcls.models.backbones import create_model
    train = index_data(studio_demo).train
    rows = train.sample(3780, replace=True, random_state=0).reset_index(drop=True)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3780, 18)) + 4 * np.eye(18)[rows["label"]]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    run = RunDir(tmp_path, "big")
    run.path.mkdir()
    cfg = RunConfig(model="test_resnet", pretrained=False)
    write_text(run.config_path, cfg.to_json())
    net, _ = create_model("test_resnet")
    save_checkpoint(run.best_path, {"model": net.state_dict(), "config": cfg.to_dict(), "classes": [], "epoch": 1})
    run.write_predictions(predictions_frame(rows["path"], rows["person_id"], rows["label"], probs))
    at = app_test("pages/evaluate.py", runs_root=str(tmp_path))
    assert not at.exception
    t0 = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - t0
    print(f"Evaluate page, 3,780 saved predictions: {seconds * 1000:.0f} ms")
    assert not at.exception and seconds <= 1.0
