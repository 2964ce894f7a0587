"""DDP helper: a no-op in one process, gradients averaged across two gloo processes."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from napari_bvdm.runtime.distributed import DistContext, setup


def test_single_process_is_noop(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = setup()
    assert not ctx.enabled and ctx.is_main
    net = torch.nn.Linear(2, 1)
    assert ctx.wrap(net) is net
    assert ctx.mean(3.0) == 3.0


def _worker(rank: int, port: int, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = setup()
    torch.manual_seed(0)
    net = ctx.wrap(torch.nn.Linear(2, 1, bias=False))
    x = torch.full((1, 2), float(rank + 1))  # rank 0 sees 1s, rank 1 sees 2s
    net(x).sum().backward()
    out[rank] = net.module.weight.grad.clone()
    out[f"mean{rank}"] = ctx.mean(float(rank))
    del net  # DDP's reducer holds the process group: release it before the group goes
    ctx.close()


def test_two_process_gradients_are_averaged():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(port, out), nprocs=2, join=True)
    # mean of grads: ((1,1) + (2,2)) / 2 = (1.5, 1.5) on both ranks
    assert torch.allclose(out[0], torch.tensor([[1.5, 1.5]])) and torch.allclose(out[1], out[0])
    assert out["mean0"] == out["mean1"] == 0.5
    assert isinstance(DistContext(), DistContext)
