"""Benchmark: read and CTC-export the 92-frame 1024 x 1024 GOWT1 sequence vs a plain tifffile loop.

Each variant runs in its own subprocess, so its peak memory (``ru_maxrss``, and the numpy/Python
heap peak from ``tracemalloc``) is its own. Figures are the median of ``--repeat`` runs.

Variants
--------
read, baseline      ``tifffile.imread`` loop into lists + ``np.stack`` for raw, TRA and sparse SEG
read, read_video    ``read_video(path)`` (eager: one preallocated array per kind) + lineage check
read, lazy          ``read_video(path, lazy=True)`` then every frame of every kind touched once
open                ``read_video(path, lazy=True, check=False)`` + first frame (what napari waits for)
export, baseline    ``tifffile.imwrite`` loop (zlib level 1, as ours) + ``man_track.txt``; no checks
export, ours        ``export_video``: atomic temp folder, uint16/shape checks, rules 1-10 on write

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_io.py [--data ../shared/data] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time, tracemalloc
from pathlib import Path
import numpy as np
import tifffile

variant, seq, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ds = seq.parent
tracemalloc.start()
t0, c0 = time.perf_counter(), time.process_time()
if variant == "read_baseline":
    raw = np.stack([tifffile.imread(p) for p in sorted(seq.glob("t*.tif"))])
    tra = np.stack([tifffile.imread(p) for p in sorted((ds / "01_GT/TRA").glob("man_track*.tif"))])
    seg = np.zeros(tra.shape, np.uint16)
    for p in sorted((ds / "01_GT/SEG").glob("man_seg*.tif")):
        seg[int(p.stem[-3:])] = tifffile.imread(p)
    lineage = np.loadtxt(ds / "01_GT/TRA/man_track.txt", dtype=np.int64, ndmin=2)
    n = len(raw)
elif variant == "read_ours":
    from napari_bvdm.io.readers import read_video
    v = read_video(seq)
    n = v.n_frames
elif variant == "read_lazy":
    from napari_bvdm.io.readers import read_video
    v = read_video(seq, lazy=True)
    for arr in [v.image, *v.labels.values()]:
        for t in range(len(arr)):
            arr[t]
    n = v.n_frames
elif variant == "read_lazy_open":
    from napari_bvdm.io.readers import read_video
    v = read_video(seq, lazy=True, check=False)
    v.image[0], v.labels["TRA"][0]
    n = v.n_frames
elif variant == "export_baseline":
    from napari_bvdm.io.readers import read_video
    v = read_video(seq, lazy=True, check=False)
    t0, c0 = time.perf_counter(), time.process_time()
    kw = dict(compression="zlib", compressionargs={"level": 1})
    (out / "01").mkdir(parents=True); (out / "01_GT/TRA").mkdir(parents=True); (out / "01_GT/SEG").mkdir()
    for t in range(v.n_frames):
        tifffile.imwrite(out / f"01/t{t:03d}.tif", v.image[t], **kw)
        tifffile.imwrite(out / f"01_GT/TRA/man_track{t:03d}.tif", v.labels["TRA"][t], **kw)
    for t in v.seg_frames:
        tifffile.imwrite(out / f"01_GT/SEG/man_seg{t:03d}.tif", v.labels["SEG"][t], **kw)
    (out / "01_GT/TRA/man_track.txt").write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in v.lineage.tolist()))
    n = v.n_frames
elif variant == "export_ours":
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.io.ctc_writer import export_video
    from napari_bvdm.runtime.progress import run_job
    v = read_video(seq, lazy=True, check=False)
    t0, c0 = time.perf_counter(), time.process_time()
    run_job(export_video(out, v))
    n = v.n_frames
else:
    raise SystemExit(f"unknown variant {variant}")
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
_, heap_peak = tracemalloc.get_traced_memory()
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "frames": n, "heap_peak_mb": heap_peak / 2**20,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

VARIANTS = [
    ("read", "plain tifffile loop + np.stack", "read_baseline"),
    ("read", "read_video (eager, checked)", "read_ours"),
    ("read", "read_video(lazy=True), every frame touched", "read_lazy"),
    ("open", "read_video(lazy=True, check=False) + frame 0", "read_lazy_open"),
    ("export", "plain tifffile.imwrite loop (zlib 1)", "export_baseline"),
    ("export", "export_video (atomic, validated, zlib 1)", "export_ours"),
]


def run_variant(variant: str, seq: Path) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-io-"))
    try:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
        p = subprocess.run([sys.executable, "-c", CHILD, variant, str(seq), str(tmp / "out")],
                           capture_output=True, text=True, env=env, check=False)
        if p.returncode != 0:
            raise SystemExit(f"{variant} failed:\n{p.stderr[-3000:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="shared data folder")
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant (median reported)")
    args = ap.parse_args()
    seq = args.data / "Fluo-N2DH-GOWT1" / "01"
    if not seq.is_dir():
        print(f"GOWT1 not found at {seq}", file=sys.stderr)
        return 1
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"Python {platform.python_version()}; data: {seq} (92 x 1024 x 1024, uint8 raw, uint16 TRA/SEG)")
    print(f"median of {args.repeat} runs, each in a fresh process; load average before: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (wall times stretch on a shared machine, "
          "CPU times less so)\n")
    results: dict[str, dict] = {}
    header = (f"{'step':7} {'variant':46} {'wall s':>7} {'CPU s':>6} {'CPU ms/frame':>13} {'heap peak MB':>13} "
              f"{'max RSS MB':>11}")
    print(header)
    print("-" * len(header))
    for step, label, key in VARIANTS:
        runs = [run_variant(key, seq) for _ in range(args.repeat)]
        r = {k: statistics.median(x[k] for x in runs) for k in ("seconds", "cpu_s", "heap_peak_mb", "maxrss_mb")}
        r["frames"] = runs[0]["frames"]
        results[key] = r
        print(f"{step:7} {label:46} {r['seconds']:7.2f} {r['cpu_s']:6.2f} {1000 * r['cpu_s'] / r['frames']:13.1f} "
              f"{r['heap_peak_mb']:13.0f} {r['maxrss_mb']:11.0f}")
    print()
    for ours, base in (("read_ours", "read_baseline"), ("read_lazy", "read_baseline"),
                       ("export_ours", "export_baseline")):
        a, b = results[ours], results[base]
        print(f"{ours} / {base}: wall x{a['seconds'] / b['seconds']:.2f}, CPU x{a['cpu_s'] / b['cpu_s']:.2f}, "
              f"heap peak x{a['heap_peak_mb'] / b['heap_peak_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
