"""What this machine can train on: the CPU and each CUDA GPU, with names and free memory.

torch is imported inside each function: listing jobs or runs must not pay its import.
"""
from __future__ import annotations

import os


def list_devices() -> list[dict]:
    import torch
    out = [{"device": "cpu", "name": f"CPU ({os.cpu_count()} cores)", "free_gb": None, "total_gb": None}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            out.append({"device": f"cuda:{i}", "name": torch.cuda.get_device_name(i),
                        "free_gb": round(free / 2**30, 1), "total_gb": round(total / 2**30, 1)})
    return out


def has_gpu() -> bool:
    import torch
    return torch.cuda.is_available()


def resolve_device(name: str = "auto"):
    """'auto' -> the first GPU if there is one, else the CPU; a GPU asked for on a machine without one is refused."""
    import torch
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA GPU is available here")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s): "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return torch.device(name)


def device_of(device: str) -> str:
    """The device a job queues on, for a config's `device` (auto / cpu / cuda / cuda:N): 'cpu' or 'cuda:N'."""
    if device == "auto":
        return "cuda:0" if has_gpu() else "cpu"
    return "cuda:0" if device == "cuda" else device
