"""Where the GPU time goes, A/B in one process (issue 17): cold decode (Pillow workers vs nvJPEG), one member's
flip-TTA pass (cuDNN autotuning on/off, batch 256/512) against its resident-tensor limit, and training at 224
with the side-stream prefetch on and off against the same model's limit, eager then compiled.

Usage: PYTHONPATH=. python3 benchmarks/gpu_profile.py DATA_ROOT OUT_JSON   (DATA_ROOT with the 12,600 eval images)
"""
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from maskcls.augment.spec import create_preset
from maskcls.data.cache import build_cache
from maskcls.data.index import index_data
from maskcls.models.backbones import create_model
from maskcls.orchestration.bench import _Resident, _model, _timed_train, infer_limit
from maskcls.train.engine import predict_batches
from maskcls.train.loaders import CachedLoader

root, out_path = sys.argv[1], sys.argv[2]
results: dict = {}
SMOKE = os.environ.get("PROFILE_SMOKE") == "1"  # a CPU dry run of the script itself: tiny and no compile
dev = torch.device("cpu" if SMOKE else "cuda")
size = (64, 64) if SMOKE else (224, 224)


def log(key, value):
    results[key] = value
    print(key, value, flush=True)
    Path(out_path).write_text(json.dumps(results, indent=1))


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn):
    sync()
    t0 = time.perf_counter()
    r = fn()
    sync()
    return r, round(time.perf_counter() - t0, 3)


paths = index_data(root).eval["path"].tolist()
n = len(paths)
log("eval_images", n)
tmp = Path(tempfile.mkdtemp())
torch.zeros(1, device=dev)  # CUDA context outside the timings
cpu, s = timed(lambda: build_cache(paths, size, tmp / "cpu", None, workers=os.cpu_count()))
log("decode_pillow_workers_s", s)
gpu, s = timed(lambda: build_cache(paths, size, tmp / "gpu", None, device=dev))
log("decode_nvjpeg_s", s)
d = np.abs(np.asarray(gpu.array, np.int16) - np.asarray(cpu.array, np.int16))
log("decode_pixel_mean_abs_diff", round(float(d.mean()), 3))

spec = create_preset("baseline")
data = CachedLoader(gpu.array, np.arange(n), np.zeros(n), 512, spec=spec, train=False, device=dev, channels_last=True).data
for autotune in (False, True):
    torch.backends.cudnn.benchmark = autotune
    for batch in (256, 512):
        model = create_model("efficientnet_b0", pretrained=False)[0].to(dev).to(memory_format=torch.channels_last).eval()
        loader = CachedLoader(data, np.arange(n), np.zeros(n), batch, spec=spec, train=False, device=dev, channels_last=True)
        _, first = timed(lambda: predict_batches(model, loader, dev, True, True))
        _, second = timed(lambda: predict_batches(model, loader, dev, True, True))
        limit = infer_limit([model], n, batch, size, device=dev, tta=True)
        log(f"member_flip_pass autotune={autotune} batch={batch}", {"first_s": first, "second_s": second,
                                                                    "limit_s": round(limit, 3)})

# prefetch gives the same batches (strong spec: random draws on the device generator)
strong = create_preset("strong")
rows = np.arange(n)
same = []
for pf in ("0", "1"):
    os.environ["MASKCLS_PREFETCH"] = pf
    it = iter(CachedLoader(data, rows, rows % 18, 8 if SMOKE else 256, spec=strong, train=True, device=dev, seed=3,
                           channels_last=True))
    same.append([next(it)[0].float().cpu() for _ in range(3)])
log("prefetch_same_batches", all(torch.equal(a, b) for a, b in zip(*same)))

labels = np.random.default_rng(0).integers(0, 18, n)
steps, warmup = (2, 1) if SMOKE else (36, 8)
for compiled in (False,) if SMOKE else (False, True):
    torch.backends.cudnn.benchmark = True
    model = _model("efficientnet_b0", dev, True, compiled)
    w = warmup + (10 if compiled else 0)
    row = {"limit_before": round(_timed_train(model, _Resident(8 if SMOKE else 256, size, dev, w + steps, True), dev, amp=True, steps=steps, warmup=w), 1)}
    for pf in ("0", "1", "0", "1"):
        os.environ["MASKCLS_PREFETCH"] = pf
        loader = CachedLoader(data, rows, labels, 256, spec=spec, train=True, device=dev, channels_last=True)
        loader.batch_size = 8 if SMOKE else 256
        row.setdefault(f"fast_prefetch{pf}", []).append(round(_timed_train(model, loader, dev, amp=True, steps=steps, warmup=warmup), 1))
    row["limit_after"] = round(_timed_train(model, _Resident(8 if SMOKE else 256, size, dev, warmup + steps, True), dev,
                                            amp=True, steps=steps, warmup=warmup), 1)
    log(f"train224 compiled={compiled}", row)
shutil.rmtree(tmp, ignore_errors=True)
