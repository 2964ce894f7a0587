"""Peak memory of ``bvdm simulate-masks`` and ``bvdm generate`` against the video's length.

Each run is its own process (the ``bvdm`` command as a user runs it); its peak resident set size is read
from the operating system when it ends. Prints one line per run and ends with one JSON line holding, per
command, the peak RSS in MB for each length and the ratio longest / shortest (1.0: memory flat in length).

    python benchmarks/bench_memory.py                                 # 100 and 2000 frames, 256 x 256
    python benchmarks/bench_memory.py --texture classical --frames 100 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """``(peak RSS in MB, seconds)`` of one command run in a fresh process (Linux and macOS)."""
    code = ("import resource, subprocess, sys\n"
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
            "k = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "print(k / 1024 if sys.platform != 'darwin' else k / 2**20)\n"
            "sys.exit(r.returncode)")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 2000])
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--texture", default="", help="texture model for generate: '' the bundled one, or 'classical'")
    ap.add_argument("--parts", default="simulate,generate")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args()
    bvdm = shutil.which("bvdm") or str(Path(sys.executable).with_name("bvdm"))
    if not os.path.exists(bvdm):
        raise SystemExit("the bvdm command is not installed next to this Python")
    size = [str(s) for s in args.size]
    result: dict = {"size": args.size, "cells": args.cells, "texture": args.texture or "bundled"}
    with tempfile.TemporaryDirectory(prefix="bvdm-bench-memory-") as tmp:
        for part in args.parts.split(","):
            peaks = {}
            for n in args.frames:
                out = Path(tmp) / f"{part}-{n}"
                if part == "simulate":
                    cmd = [bvdm, "simulate-masks", "default", "-o", str(out), "--frames", str(n), "--size", *size,
                           "--cells", str(args.cells), "--quiet"]
                else:
                    cmd = [bvdm, "generate", "-o", str(out), "--videos", "1", "--frames", str(n), "--size", *size,
                           "--cells", str(args.cells), "--quiet"]
                    cmd += ["--texture", args.texture] if args.texture else []
                mb, sec = peak_rss_mb(cmd)
                peaks[str(n)] = round(mb, 1)
                print(f"{part:9s} {n:7d} frames  peak RSS {mb:7.1f} MB  {sec:7.1f} s", flush=True)
                shutil.rmtree(out, ignore_errors=True)
            lengths = sorted(args.frames)
            result[part] = {"peak_rss_mb": peaks,
                            "ratio_longest_shortest": round(peaks[str(lengths[-1])] / peaks[str(lengths[0])], 3)}
    line = json.dumps(result)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
