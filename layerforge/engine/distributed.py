"""Data-parallel training on torch.distributed (torchrun; gloo on CPU, nccl on CUDA).

``torchrun --nproc_per_node N -m layerforge train CONFIG`` runs N processes. Each reads the same
data, shuffles it with the same seed, and takes its contiguous slice of every global batch
(``train.batch_size`` is the global batch); DistributedDataParallel averages the gradients. Only rank 0
writes the run directory and prints. Metrics are gathered from every rank at the end of an epoch
(in the single-process row order), so every rank reports, monitors and stops alike.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) when not distributed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def init(device_type: str) -> None:
    """Join the process group torchrun prepared (once)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (one tiny all-reduce)."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_lists(lists: dict[str, list["torch.Tensor"] | list[int]], world: int) -> list[dict[str, Any]]:
    """Every rank's per-step lists (CPU copies), in rank order."""
    import torch.distributed as dist

    mine = {k: [v.detach().cpu() if hasattr(v, "detach") else v for v in vs] for k, vs in lists.items()}
    out: list[Any] = [None] * world
    dist.all_gather_object(out, mine)
    return out
