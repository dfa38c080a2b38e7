"""Distributed data parallel through torchrun: process group set-up and small collectives.

``torchrun --nproc_per_node=N -m rnnkit <task> train ...`` starts N processes
with RANK / WORLD_SIZE / LOCAL_RANK set; each trains on its share of every
global batch and DDP averages the gradients, so N processes with the same
global batch take the same steps as one. gloo on the CPU, nccl on GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def setup(device: str | None = None) -> World:
    """Join the process group when launched by torchrun; a single process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()  # no rank leaves while another still talks to it
        dist.destroy_process_group()


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (a consistent stop / skip)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def check_device(requested: str) -> torch.device:
    """``--device`` as a torch device rnnkit can run on here, or a one-line error."""
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(f"--device {requested}: not a device (cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {requested}: CUDA is not available on this machine; use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {requested}: Apple's MPS is not available on this machine")
    elif device.type != "cpu":
        raise ValueError(
            f"--device {requested}: rnnkit runs on cpu, cuda or cuda:N (and mps on a Mac), "
            f"not on {device.type}"
        )
    return device


def pick_device(requested: str | None, world: World) -> torch.device:
    """CUDA when present (one GPU per local rank), the CPU otherwise; ``--device`` overrides."""
    if requested:
        device = check_device(requested)
        if device.type == "cuda" and world.distributed and device.index is None:
            device = torch.device("cuda", world.local_rank)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", world.local_rank if world.distributed else 0)
    return torch.device("cpu")


def gather_carry(carry, world: World) -> list | None:
    """Every rank's carried state (a tensor, a tuple of tensors or None), in rank order."""
    if carry is None:
        return None
    parts = (carry,) if isinstance(carry, torch.Tensor) else tuple(carry)
    gathered = []
    for part in parts:
        pieces = [torch.empty_like(part) for _ in range(world.size)]
        dist.all_gather(pieces, part.contiguous())
        gathered.append([p.cpu() for p in pieces])
    per_rank = [tuple(g[r] for g in gathered) for r in range(world.size)]
    return [p[0] if isinstance(carry, torch.Tensor) else p for p in per_rank]
