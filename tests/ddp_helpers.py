"""Run a function in two gloo ranks on the CPU, as `torchrun --nproc_per_node=2` would."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp


def flat_weights(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def _rank_main(rank: int, port: int, world: int, fn: Callable, args: tuple, out: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from napari_bvdm.runtime.distributed import setup

    ctx = setup()
    try:
        fn(rank, *args, out)
    finally:
        ctx.close()


def spawn_ranks(fn: Callable, *args: Any, world: int = 2) -> dict:
    """Call ``fn(rank, *args, out)`` in ``world`` processes joined in a gloo group; return ``out`` as a dict."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_rank_main, args=(port, world, fn, args, out), nprocs=world, join=True)
    return dict(out)
