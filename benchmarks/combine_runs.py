"""Combine the ``runs.csv`` of several ``bvdm evaluate`` folders and compare the training sets by seed.

Prints a table (mean and standard deviation over runs) and, for each pair of sets named with
``--pair A=B``, the mean paired difference A - B by seed with its standard error and how many seeds A
won; ``--diff A=B`` gives the difference of the means with Welch's standard error instead, for runs that
do not pair by seed (training on a GPU is not bit-reproducible, so the same seed twice gives two
different networks). Folders are found recursively; a label ``NAME=GLOB`` renames the sets of the
folders matching GLOB (e.g. ``painted=painted-seed*`` turns their ``synthetic`` into
``painted synthetic``).

Examples
--------
python benchmarks/combine_runs.py gpu_runs --label "painted=*painted-seed*" \
    --diff "real+synthetic=real" --diff "painted real+synthetic=real" --diff "synthetic=real"
"""

from __future__ import annotations

import argparse
import fnmatch
import math
from pathlib import Path

import numpy as np

METRICS = ("SEG", "DET", "TRA", "LNK")


Run = tuple[int, dict[str, float]]  # seed, scores


def collect(root: Path, labels: dict[str, str]) -> tuple[list[dict], dict[str, list[Run]]]:
    """Every row of every runs.csv under ``root`` (sets renamed by ``labels``), and per set its (seed, scores)."""
    from napari_bvdm.evaluate.experiment import read_runs

    rows: list[dict] = []
    for path in sorted(root.rglob("runs.csv")):
        rel = path.parent.relative_to(root).as_posix()
        prefix = next((lab for lab, pat in labels.items() if fnmatch.fnmatch(rel, pat)), "")
        rows += [{**r, "set": f"{prefix} {r['set']}".strip()} for r in read_runs(path)]
    sets: dict[str, list[Run]] = {}
    for r in rows:
        sets.setdefault(r["set"], []).append((r["seed"], {m: r.get(m, math.nan) for m in METRICS}))
    return rows, sets


def table(rows: list[dict]) -> str:
    from napari_bvdm.evaluate.experiment import summarise

    lines = ["| training set | runs | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for name, per in summarise(rows, METRICS).items():
        cells = [f"{mean:.3f} ± {sd:.3f}" for mean, sd, _ in (per[m] for m in METRICS)]
        lines.append(f"| {name} | {max(n for _, _, n in per.values())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_seed(runs: list[Run]) -> dict[int, dict[str, float]] | None:
    """Seed -> scores, or None when a seed ran twice (no pairing possible)."""
    seeds = [s for s, _ in runs]
    return dict(runs) if len(set(seeds)) == len(seeds) else None


def welch(a: list[Run], b: list[Run]) -> str:
    if len(a) < 2 or len(b) < 2:
        return "too few runs"
    parts = []
    for m in METRICS[:3]:
        x, y = np.array([r[m] for _, r in a]), np.array([r[m] for _, r in b])
        se = math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
        parts.append(f"{m} {x.mean() - y.mean():+.4f} (se {se:.4f})")
    return f"{len(a)} vs {len(b)} runs: " + "; ".join(parts)


def paired(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]) -> str:
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return f"{len(seeds)} common seed(s): too few"
    parts = []
    for m in METRICS[:3]:
        d = np.array([a[s][m] - b[s][m] for s in seeds])
        parts.append(f"{m} {d.mean():+.4f} (se {d.std(ddof=1) / math.sqrt(len(d)):.4f}, {int((d > 0).sum())}/{len(d)})")
    return f"{len(seeds)} seeds: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="folder holding bvdm evaluate result folders")
    p.add_argument("--label", action="append", default=[], help="NAME=GLOB: prefix the sets of matching folders")
    p.add_argument("--pair", action="append", default=[], help="A=B: paired difference A - B by seed")
    p.add_argument("--diff", action="append", default=[], help="A=B: difference of the means A - B (Welch)")
    args = p.parse_args(argv)
    labels = dict(x.split("=", 1) for x in args.label)
    rows, sets = collect(args.root, labels)
    if not sets:
        raise SystemExit(f"no runs.csv under {args.root}")
    print(table(rows))
    for kind, pairs in (("pair", args.pair), ("diff", args.diff)):
        for pair in pairs:
            a, b = pair.split("=", 1)
            if a not in sets or b not in sets:
                print(f"{a} - {b}: missing set (have: {', '.join(sets)})")
                continue
            if kind == "diff":
                print(f"{a} - {b}, means: {welch(sets[a], sets[b])}")
                continue
            sa, sb = by_seed(sets[a]), by_seed(sets[b])
            if sa is None or sb is None:
                print(f"{a} - {b}: a seed ran twice, so the runs do not pair; use --diff")
                continue
            print(f"{a} - {b}, paired: {paired(sa, sb)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
