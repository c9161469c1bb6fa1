"""kornia.augmentation against maskcls's BatchAugment for the same spec (the `strong` preset's per-image
transforms: color jitter p=0.5, gaussian blur p=0.2, hflip p=0.5, rotation 10 deg p=0.3, random erasing p=0.25),
per-image probabilities and parameters, on this machine's CPU (and CUDA when there is one).

kornia is not a dependency of maskcls; install it beside the run to reproduce:
    pip install --target /tmp/kornia_site kornia kornia_rs
    PYTHONPATH=/tmp/kornia_site:. python benchmarks/kornia_vs_batchaugment.py [--json]
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from maskcls.augment.pipelines import BatchAugment
from maskcls.augment.spec import create_preset


def kornia_pipeline():
    import kornia.augmentation as K
    return K.AugmentationSequential(
        K.ColorJitter(0.3, 0.3, 0.3, 0.05, p=0.5),
        K.RandomGaussianBlur((9, 9), (0.1, 2.0), p=0.2),
        K.RandomHorizontalFlip(p=0.5),
        K.RandomRotation(10.0, p=0.3),
        K.RandomErasing(scale=(0.02, 0.15), p=0.25),
        data_keys=["input"], same_on_batch=False)


def timed(fn, x, n: int = 10) -> float:
    fn(x)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn(x)
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fire_rates(fn_fired, x, n: int = 20) -> dict[str, float]:
    counts: dict[str, float] = {}
    for _ in range(n):
        for k, v in fn_fired(x).items():
            counts[k] = counts.get(k, 0.0) + float(v.float().mean())
    return {k: round(v / n, 3) for k, v in counts.items()}


def main() -> int:
    torch.manual_seed(0)
    spec = create_preset("strong")
    spec.mix.cutmix_p = 0.0  # batch mixing is not a per-image transform: compared separately, not here
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for batch, (h, w) in ((32, (128, 96)), (64, (224, 224))):
            x = torch.rand(batch, 3, h, w, device=device)
            ours = BatchAugment(spec, train=True, seed=0, device=device)
            try:
                k = kornia_pipeline().to(device)
                kornia_s = timed(lambda t: k(t), x)
            except ImportError:
                kornia_s = None
            ours_s = timed(lambda t: ours(t)[0], x)
            rows.append({"device": device, "batch": batch, "size": f"{h}x{w}", "batchaugment_ms": round(ours_s * 1e3, 1),
                         "kornia_ms": round(kornia_s * 1e3, 1) if kornia_s else None,
                         "kornia_over_ours": round(kornia_s / ours_s, 2) if kornia_s else None})
    rates = fire_rates(lambda t: BatchAugment(spec, train=True)(t)[1], torch.rand(256, 3, 64, 48))
    out = {"rows": rows, "batchaugment_fire_rates": rates,
           "spec_p": {t.name: t.p for t in spec.transforms}}
    if "--json" in sys.argv:
        print(json.dumps(out, indent=2))
    else:
        for r in rows:
            print(r)
        print("BatchAugment fire rates (expected = spec p):", rates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
