"""Speed of the texture model: training crops/s and sampling cell-passes/s, fp32 vs bf16, with the share of
the CPU's peak they reach (fp32 peak ~170 GFLOP/s, bf16 ~400 GFLOP/s on the 2-core dev machines, see
../shared/docs/performance-notes.md), for the reference UNet (width 16) and the bundled default (width 8).
On CUDA it also compares a batch of 64 cells against one cell at a time.

    python benchmarks/bench_texture_speed.py [--threads 2] [--peak-fp32 170] [--peak-bf16 400]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from napari_bvdm.texture.unet import UNet, UNetConfig, count_parameters, forward_flops


def _timeit(fn, reps: int, warm: int = 1) -> float:
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--widths", default="16,8")
    ap.add_argument("--peak-fp32", type=float, default=170.0)
    ap.add_argument("--peak-bf16", type=float, default=400.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}, load average "
          f"{os.getloadavg()[0]:.1f} (shared machine: figures are noisy)")
    S = args.size
    for w in (int(v) for v in args.widths.split(",")):
        cfg = UNetConfig(width=w)
        gf = forward_flops(cfg, S) / 1e9
        net = UNet(cfg).to(dev)
        print(f"\nUNet width {w}: {count_parameters(net) / 1e6:.2f} M parameters, {gf:.3f} GFLOP per {S}x{S} pass")
        print(f"{'what':34s} {'items/s':>9s} {'GFLOP/s':>8s} {'% peak':>7s}")
        # training: forward + backward ~ 3x forward
        opt = torch.optim.RAdam(net.parameters(), lr=1e-4)
        for prec in ("fp32", "bf16"):
            for b in (8, 16):
                x = torch.randn(b, 1, S, S, device=dev)
                t = torch.randint(0, 400, (b,), device=dev)

                def step(x=x, t=t, prec=prec, net=net, opt=opt):
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=prec == "bf16"):
                        out = net(x, t)
                    loss = (out.float() - x).pow(2).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

                dt = _timeit(step, args.reps)
                rate = b / dt
                gfs = rate * 3 * gf
                peak = args.peak_bf16 if prec == "bf16" else args.peak_fp32
                print(f"{f'train {prec} batch {b}':34s} {rate:9.1f} {gfs:8.1f} {100 * gfs / peak:6.1f}%", flush=True)
        net.eval()
        base = None
        for prec in ("fp32", "bf16"):
            for b in (1, 8, 64):
                x = torch.randn(b, 1, S, S, device=dev)
                t = torch.full((b,), 100, device=dev)

                @torch.no_grad()
                def fwd(x=x, t=t, prec=prec, net=net):
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=prec == "bf16"):
                        net(x, t)
                    if dev.type == "cuda":
                        torch.cuda.synchronize()

                dt = _timeit(fwd, args.reps if b < 64 else max(2, args.reps // 2))
                rate = b / dt
                gfs = rate * gf
                peak = args.peak_bf16 if prec == "bf16" else args.peak_fp32
                extra = ""
                if prec == "fp32" and b == 1:
                    base = rate
                elif prec == "fp32" and base:
                    extra = f"  x{rate / base:.2f} per cell vs batch 1"
                print(f"{f'sample {prec} batch {b} (cell-passes)':34s} {rate:9.1f} {gfs:8.1f} "
                      f"{100 * gfs / peak:6.1f}%{extra}", flush=True)


if __name__ == "__main__":
    main()
