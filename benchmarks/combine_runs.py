"""Combine the ``runs.csv`` of several ``bvdm evaluate`` folders and compare the training sets by seed.

Prints a table (mean and standard deviation over seeds) and, for each pair of sets named with
``--pair A=B``, the mean paired difference A - B with its standard error and how many seeds A won.
Folders are found recursively; a label ``NAME=GLOB`` renames the sets of the folders matching GLOB
(e.g. ``painted=painted-seed*`` turns their ``synthetic`` into ``painted synthetic``).

Examples
--------
python benchmarks/combine_runs.py gpu_runs --label "painted=painted-seed*" \
    --pair "real+synthetic=real" --pair "painted real+synthetic=real" --pair "synthetic=real"
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import math
from pathlib import Path

import numpy as np

METRICS = ("SEG", "DET", "TRA", "LNK")


def collect(root: Path, labels: dict[str, str]) -> dict[str, dict[int, dict[str, float]]]:
    """Set name -> seed -> scores, from every runs.csv under ``root`` (a later duplicate is an error)."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for path in sorted(root.rglob("runs.csv")):
        rel = path.parent.relative_to(root).as_posix()
        prefix = next((lab for lab, pat in labels.items() if fnmatch.fnmatch(rel, pat)), "")
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                name = f"{prefix} {row['set']}".strip()
                seed = int(row["seed"])
                if seed in out.setdefault(name, {}):
                    raise SystemExit(f"{name} seed {seed} appears twice (second in {path})")
                out[name][seed] = {m: float(row.get(m, "nan") or "nan") for m in METRICS}
    return out


def table(sets: dict[str, dict[int, dict[str, float]]]) -> str:
    lines = ["| training set | seeds | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for name, runs in sets.items():
        seeds = sorted(runs)
        cells = []
        for m in METRICS:
            v = np.array([runs[s][m] for s in seeds])
            sd = v.std(ddof=1) if len(v) > 1 else math.nan
            cells.append(f"{v.mean():.3f} ± {sd:.3f}")
        lines.append(f"| {name} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    args = p.parse_args(argv)
    labels = dict(x.split("=", 1) for x in args.label)
    sets = collect(args.root, labels)
    if not sets:
        raise SystemExit(f"no runs.csv under {args.root}")
    print(table(sets))
    for pair in args.pair:
        a, b = pair.split("=", 1)
        if a not in sets or b not in sets:
            print(f"{a} - {b}: missing set (have: {', '.join(sets)})")
            continue
        print(f"{a} - {b}: {paired(sets[a], sets[b])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
