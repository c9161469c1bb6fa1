"""Distributed training settings: which rank this process is, and the device it trains on."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from maskcls.common.devices import resolve_device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def select_device(name: str, dist: Dist) -> torch.device:
    """The config's device; under DDP each process takes its own GPU (LOCAL_RANK)."""
    device = resolve_device(name)
    if device.type == "cuda" and dist.world > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.rank)))
    return device


def init_dist() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as td
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not td.is_initialized():
        td.init_process_group(backend)
    return Dist(td.get_rank(), td.get_world_size())
