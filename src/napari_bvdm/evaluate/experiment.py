"""Train on synthetic, test on real: the four-training-set comparison behind ``bvdm evaluate``.

For each training set (``real`` = annotated frames of the first part of the real sequence,
``synthetic`` = our generated CTC data, ``real+synthetic`` = both (each patch drawn from either with equal
probability, ``ExperimentConfig.real_share``),
``classical`` = data from the classical renderer) and each seed, the same segmentation network is
trained with the same budget, applied to the held-out second part of the real sequence, linked by the
overlap tracker and scored (SEG, DET, TRA, LNK) with py-ctcmetrics against the real ground truth.
The segmenter is the small UNet of :mod:`.segnet` (default) or Cellpose 3 trained from scratch
(``segmenter="cellpose"``, :mod:`.cellpose_seg`). The result folder holds the per-run scores (``runs.csv``),
mean and spread per training set (``summary.csv``, ``summary.md``), a plot (``scores.png``), the config and
every ``01_RES``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.video import InputError
from ..runtime.config import Config
from ..runtime.progress import CancelToken, Job, Progress
from .cellpose_seg import CellposeConfig
from .data import (
    find_sequences,
    load_sequence,
    split_frames,
    training_pairs,
    window_images,
    write_gt_window,
)
from .scoring import AOGM_ERRORS, METRICS, require_ctc_metrics, score_result, write_res
from .segnet import SegNetConfig, save_segnet, segment_frames
from .synthetic_sets import SyntheticSetsConfig
from .tracker import TrackerConfig, track_instances
from .train import TrainConfig, prepare_pool, train_segnet

__all__ = [
    "TRAINING_SETS",
    "ExperimentConfig",
    "ExperimentResult",
    "run_experiment",
    "read_runs",
    "summarise",
    "summary_markdown",
    "error_table",
    "plot_summary",
    "check_targets",
    "target_gaps",
    "paired_wins",
    "paired_differences",
]

TRAINING_SETS = ("real", "synthetic", "real+synthetic", "classical")
SEGMENTERS = ("segnet", "cellpose")


@dataclass
class ExperimentConfig(Config):
    """What to compare and at which scale.

    Attributes
    ----------
    real : real CTC sequence folder with ground truth (``DS/01`` next to ``DS/01_GT``).
    synthetic : our synthetic CTC data (a sequence folder or a dataset folder with ``01``, ``02``...);
        empty when not available.
    classical : synthetic data from the classical renderer (same layout); empty when not available.
    sets : training sets to compare, from ``real``, ``synthetic``, ``real+synthetic``, ``classical``.
    seeds : one training run per seed and set.
    split : fraction of the real frames used for training (and generation); the rest is the test set.
    max_frames : use only the first ``max_frames`` real frames (0 = all), for quick runs.
    downsample : integer factor applied to the real frames (train and test).
    synthetic_downsample : factor for the synthetic data (0 = same as ``downsample``).
    crop : centre crop ``(h, w)`` of the test frames after downsampling (empty = whole frame).
    max_synthetic_frames : at most this many synthetic frames per set (evenly spread), for memory.
    metrics : measures to compute.
    real_share : in ``real+synthetic``, every training patch comes from the real frames with this
        probability, else from the synthetic ones.
    generate : how ``bvdm evaluate --generate`` makes the synthetic sets from the training part.
    segmenter : ``segnet`` (the small UNet, settings ``net`` and ``train``) or ``cellpose`` (Cellpose 3 trained
        from scratch, settings ``cellpose``; only fully annotated real frames, as its loss has no ignore mask).
    cellpose : Cellpose's training and segmentation settings.
    """

    real: str = ""
    synthetic: str = ""
    classical: str = ""
    sets: tuple[str, ...] = TRAINING_SETS
    seeds: tuple[int, ...] = (0, 1, 2)
    split: float = 0.5
    max_frames: int = 0
    downsample: int = 2
    synthetic_downsample: int = 0
    crop: tuple[int, ...] = ()
    max_synthetic_frames: int = 200
    metrics: tuple[str, ...] = METRICS
    real_share: float = 0.5
    net: SegNetConfig = field(default_factory=SegNetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    save_weights: bool = False
    generate: SyntheticSetsConfig = field(default_factory=SyntheticSetsConfig)
    segmenter: str = "segnet"
    cellpose: CellposeConfig = field(default_factory=CellposeConfig)

    def check(self) -> None:
        self._require(self.segmenter in SEGMENTERS, "segmenter", f"must be one of {list(SEGMENTERS)}")
        bad = sorted(set(self.sets) - set(TRAINING_SETS))
        self._require(not bad, "sets", f"unknown training set(s) {bad}; use {list(TRAINING_SETS)}")
        self._require(len(self.sets) > 0, "sets", "give at least one training set")
        self._require(len(self.seeds) > 0, "seeds", "give at least one seed")
        self._require(0.05 <= self.split <= 0.95, "split", "must be in [0.05, 0.95]")
        self._require(self.max_frames >= 0, "max_frames", "must be >= 0 (0 = all)")
        self._require(1 <= self.downsample <= 16, "downsample", "must be in 1..16")
        self._require(0 <= self.synthetic_downsample <= 16, "synthetic_downsample", "must be in 0..16")
        self._require(len(self.crop) in (0, 2) and all(c >= 16 for c in self.crop), "crop",
                      "must be empty or two sizes >= 16")
        self._require(self.max_synthetic_frames >= 1, "max_synthetic_frames", "must be >= 1")
        self._require(0.0 < self.real_share < 1.0, "real_share", "must be in (0, 1) (0 or 1 = a single pool)")
        badm = sorted(set(self.metrics) - set(METRICS))
        self._require(not badm and len(self.metrics) > 0, "metrics", f"use some of {list(METRICS)}")


@dataclass
class ExperimentResult:
    """Per-run scores, the summary per training set, and where everything was written."""

    out_dir: Path
    runs: list[dict[str, Any]]
    summary: dict[str, dict[str, tuple[float, float, int]]]
    skipped: dict[str, str]
    targets: dict[str, bool | None]
    info: dict[str, Any]


# --------------------------------------------------------------------------------------------
def _load_synthetic(path: str, factor: int, max_frames: int, what: str) -> list:
    seqs = find_sequences(path)
    videos = [load_sequence(s) for s in seqs]
    total = sum(v.n_frames for v in videos)
    per = [max(1, round(max_frames * v.n_frames / total)) for v in videos]
    pairs = []
    for v, n in zip(videos, per, strict=True):
        pairs += training_pairs(v, None, factor=factor, label_source="auto", max_pairs=n)
    if not pairs:
        raise InputError(f"{what} data at {path} holds no annotated frames")
    return pairs


def _mixing(parts: Sequence[str], real_share: float) -> dict[str, Any]:
    """``weights`` for :func:`train_segnet` of a (possibly mixed) training set."""
    if len(parts) == 1:
        return {}
    if parts[0] != "real" or len(parts) != 2:
        raise InputError(f"a mixed training set is real+<one synthetic set>, not {'+'.join(parts)}")
    return {"weights": (real_share, 1.0 - real_share)}


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


ERROR_FIELDS = [*(f"AOGM_{e}" for e in AOGM_ERRORS), "AOGM", "AOGM_0"]
RUN_FIELDS = ["set", "seed", *METRICS, "Valid", "n_tracks", "n_divisions", "train_s", "segment_s", "score_s",
              "final_loss", *ERROR_FIELDS]


def _write_runs(path: Path, runs: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RUN_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in runs:
        w.writerow({k: (f"{v:{'.10g' if k.startswith('AOGM') else '.6g'}}" if isinstance(v, float) else v)
                    for k, v in r.items()})
    _write_text_atomic(path, buf.getvalue())


def read_runs(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``runs.csv`` written by :func:`run_experiment` (set, seed, then floats)."""
    runs = []
    path = Path(path)
    with path.open() as f:
        for row in csv.DictReader(f):
            r: dict[str, Any] = {"set": row["set"], "seed": int(row["seed"])}
            for k, v in row.items():
                if k not in ("set", "seed") and v not in ("", None):
                    r[k] = float(v)
            runs.append(r)
    return runs


def summarise(runs: Sequence[dict[str, Any]], metrics: Sequence[str] = METRICS) -> dict[str, dict[str, tuple]]:
    """Mean, sample standard deviation (0 for one run) and count per training set and measure."""
    out: dict[str, dict[str, tuple]] = {}
    for name in dict.fromkeys(r["set"] for r in runs):
        out[name] = {}
        for m in metrics:
            vals = np.array([r[m] for r in runs if r["set"] == name and not math.isnan(r.get(m, math.nan))])
            if len(vals):
                out[name][m] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals))
            else:
                out[name][m] = (math.nan, math.nan, 0)
    return out


_WITHIN = {"synthetic SEG within 0.03 of real": 0.03}
_TARGET_PAIRS = {
    "synthetic SEG within 0.03 of real": ("synthetic", "real", "SEG"),
    "real+synthetic SEG above real": ("real+synthetic", "real", "SEG"),
    "real+synthetic TRA above real": ("real+synthetic", "real", "TRA"),
    "synthetic SEG above classical": ("synthetic", "classical", "SEG"),
    "synthetic TRA above classical": ("synthetic", "classical", "TRA"),
}


def _holds(name: str, a: float, b: float) -> bool:
    """Whether target ``name`` holds for score ``a`` of its first set and ``b`` of its second."""
    margin = _WITHIN.get(name, 0.0)
    return bool(a >= b - margin) if margin else bool(a > b)


def check_targets(summary: dict[str, dict[str, tuple]]) -> dict[str, bool | None]:
    """The issue's targets on the means (``None`` where a set is missing)."""

    def mean(s: str, m: str) -> float | None:
        v = summary.get(s, {}).get(m)
        return None if v is None or math.isnan(v[0]) else v[0]

    out: dict[str, bool | None] = {}
    for name, (a, b, m) in _TARGET_PAIRS.items():
        va, vb = mean(a, m), mean(b, m)
        out[name] = None if va is None or vb is None else _holds(name, va, vb)
    return out


def target_gaps(summary: dict[str, dict[str, tuple]]) -> dict[str, tuple[float, float]]:
    """Per target: (mean difference first - second set, pooled seed standard deviation)."""
    out = {}
    for name, (a, b, m) in _TARGET_PAIRS.items():
        va, vb = summary.get(a, {}).get(m), summary.get(b, {}).get(m)
        if va is None or vb is None or va[2] == 0 or vb[2] == 0:
            out[name] = (math.nan, math.nan)
        else:
            out[name] = (va[0] - vb[0], math.sqrt((va[1] ** 2 + vb[1] ** 2) / 2))
    return out


def paired_wins(runs: Sequence[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per target: (seeds where the target holds, seeds both sets ran).

    Runs of one seed start from the same network weights, so the per-seed comparison removes the
    spread that comes from initialisation.
    """
    return {name: (sum(_holds(name, x, y) for x, y in pairs), len(pairs))
            for name, pairs in _seed_pairs(runs).items()}


def _seed_pairs(runs: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Per target: the (first set, second set) scores of every seed both sets ran, NaN pairs left out."""
    score = {(r["set"], r["seed"], m): r.get(m, math.nan) for r in runs for m in METRICS}
    out = {}
    for name, (a, b, m) in _TARGET_PAIRS.items():
        pairs = [(score[(a, sd, m)], score[(b, sd, m)]) for sd in dict.fromkeys(r["seed"] for r in runs)
                 if (a, sd, m) in score and (b, sd, m) in score]
        out[name] = [(x, y) for x, y in pairs if not (math.isnan(x) or math.isnan(y))]
    return out


def paired_differences(runs: Sequence[dict[str, Any]]) -> dict[str, tuple[float, float, int]]:
    """Per target: mean paired difference (first - second set, same seed), its standard error, seeds.

    Runs of one seed start from the same network weights and see the same patches in the same order
    where the sets allow, so the paired difference removes the spread shared by both runs of a seed; a
    mean paired difference of a t quantile's worth of standard errors (n - 1 degrees of freedom: 2.2
    for 12 seeds) is a result even when it is smaller than the pooled seed standard deviation. The
    standard error is ``nan`` below two seeds.
    """
    out = {}
    for name, pairs in _seed_pairs(runs).items():
        d = np.array([x - y for x, y in pairs])
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else math.nan
        out[name] = (float(d.mean()) if len(d) else math.nan, se, len(d))
    return out


def summary_markdown(
    summary: dict[str, dict[str, tuple]],
    metrics: Sequence[str] = METRICS,
    targets: dict[str, bool | None] | None = None,
    skipped: dict[str, str] | None = None,
    title: str = "",
    runs: Sequence[dict[str, Any]] | None = None,
) -> str:
    """A markdown table ``set | SEG | DET | ...`` with ``mean ± std (n)`` cells, targets below
    (with the per-seed wins when ``runs`` are given)."""
    lines = [f"## {title}", ""] if title else []
    lines += ["| training set | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, row in summary.items():
        cells = []
        for m in metrics:
            mu, sd, n = row[m]
            cells.append("n/a" if n == 0 else f"{mu:.3f} ± {sd:.3f} ({n})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, why in (skipped or {}).items():
        lines.append(f"| {name} | " + " | ".join(["skipped"] * len(metrics)) + f" |  <!-- {why} -->")
    if targets:
        gaps = target_gaps(summary)
        wins = paired_wins(runs) if runs is not None else {}
        paired = paired_differences(runs) if runs is not None else {}
        lines += ["", "| target | met (on the means) | difference | pooled seed std | met on seeds | "
                  "paired difference ± s.e. |", "|---|---|---|---|---|---|"]
        for k, v in targets.items():
            d, sd = gaps.get(k, (math.nan, math.nan))
            w, nw = wins.get(k, (0, 0))
            pd, pse, _ = paired.get(k, (math.nan, math.nan, 0))
            lines.append(f"| {k} | {'n/a' if v is None else ('yes' if v else 'no')} | "
                         f"{'n/a' if math.isnan(d) else f'{d:+.4f}'} | {'n/a' if math.isnan(sd) else f'{sd:.4f}'} | "
                         f"{f'{w} of {nw}' if nw else 'n/a'} | "
                         f"{'n/a' if math.isnan(pse) else f'{pd:+.4f} ± {pse:.4f}'} |")
        lines += ["", "A difference smaller than the pooled seed standard deviation is not a result on its own; "
                  "with paired seeds, weigh the paired difference against its standard error with a t quantile "
                  "for n - 1 degrees of freedom (two-sided 5 %: 2.2 standard errors for 12 seeds, 2.6 for 6, "
                  "4.3 for 3)."]
    if runs is not None:
        lines += error_table(runs)
    if skipped:
        lines += [""] + [f"- {k} skipped: {v}" for k, v in skipped.items()]
    return "\n".join(lines) + "\n"


def error_table(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines: per training set, the mean count of each AOGM error behind TRA over its seeds.

    Empty when no run holds the counts (a ``runs.csv`` from before they were recorded, or no TRA).
    """
    keys = [f"AOGM_{e}" for e in AOGM_ERRORS]
    rows = []
    for name in dict.fromkeys(r["set"] for r in runs):
        got = [r for r in runs if r["set"] == name and not math.isnan(r.get("AOGM", math.nan))]
        if got:
            rows.append(f"| {name} | " + " | ".join(f"{np.mean([r[k] for r in got]):.1f}" for k in keys)
                        + f" | {np.mean([r['AOGM'] for r in got]):.1f} | {got[0]['AOGM_0']:.0f} | {len(got)} |")
    if not rows:
        return []
    head = " | ".join(f"{e} (x{w:g})" for e, w in AOGM_ERRORS.items())
    return ["", "Errors behind TRA (mean count per run; AOGM = weighted sum, TRA = 1 - AOGM / AOGM_0): FN missed "
            "cells, FP extra detections, NS merged cells, ED/EA links to delete/add, EC wrong division links.", "",
            f"| training set | {head} | AOGM | AOGM_0 | runs |", "|---|" + "---|" * (len(keys) + 3), *rows]


def plot_summary(runs: Sequence[dict[str, Any]], metrics: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Grouped bars (mean ± std over seeds) with the single runs as dots; written as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = summarise(runs, metrics)
    names = list(summary)
    fig = Figure(figsize=(1.6 + 1.5 * len(metrics), 3.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        xs = np.arange(len(metrics)) + (k - (len(names) - 1) / 2) * width
        mu = [summary[name][m][0] for m in metrics]
        sd = [summary[name][m][1] for m in metrics]
        ax.bar(xs, mu, width * 0.9, yerr=sd, capsize=3, label=name, alpha=0.8)
        for x, m in zip(xs, metrics, strict=True):
            vals = [r[m] for r in runs if r["set"] == name and not math.isnan(r.get(m, math.nan))]
            ax.plot([x] * len(vals), vals, "k.", ms=3)
    ax.set_xticks(np.arange(len(metrics)), list(metrics))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (mean ± std over seeds)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------
def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    cancel: CancelToken | None = None,
    resume: bool = False,
) -> Job[ExperimentResult]:
    """Job: the whole comparison; yields Progress (stages ``prepare``, ``train``, ``segment``,
    ``score``, ``evaluate``) and returns an :class:`ExperimentResult`.

    Files in ``out_dir`` stay consistent when the job is closed early: ``runs.csv`` lists the runs
    finished so far (and ``resume=True`` continues from them with the same config).
    """
    require_ctc_metrics()
    if not config.real:
        raise InputError("give the real CTC sequence with ground truth (e.g. Fluo-N2DH-GOWT1/01)")
    out = Path(out_dir)
    runs = _start(config, out, resume)
    data = yield from _prepare_data(config, out)
    plan = [(s, seed) for s in config.sets if s not in data.skipped for seed in config.seeds]
    done = {(r["set"], r["seed"]) for r in runs}
    for k, (name, seed) in enumerate(plan):
        if (name, seed) in done:
            continue
        if cancel is not None:
            cancel.check()
        yield Progress(k, len(plan), f"{name}, seed {seed}", stage="evaluate")
        row = yield from _one_run(config, out, data, name, seed, cancel)
        runs.append(row)
        _write_runs(out / "runs.csv", runs)
        yield Progress(k + 1, len(plan), f"{name} seed {seed}: " + ", ".join(
            f"{m} {row[m]:.3f}" for m in config.metrics), {m: row[m] for m in config.metrics}, stage="evaluate")
    summary = summarise(runs, config.metrics)
    targets = check_targets(summary)
    tf = data.info["test_frames"]
    title = (f"train on synthetic, test on real: {Path(config.real).parent.name}/{Path(config.real).name}, "
             f"test frames {tf[0]}-{tf[1]}, 1/{config.downsample} scale"
             + (", segmenter Cellpose 3 (from scratch)" if config.segmenter == "cellpose" else ""))
    _write_summary_csv(out / "summary.csv", summary, config.metrics)
    _write_text_atomic(out / "summary.md",
                       summary_markdown(summary, config.metrics, targets, data.skipped, title, runs))
    if runs:
        plot_summary(runs, config.metrics, out / "scores.png", title)
    return ExperimentResult(out, runs, summary, data.skipped, targets, data.info)


def _start(config: ExperimentConfig, out: Path, resume: bool) -> list[dict[str, Any]]:
    """The output folder with this config: the runs finished so far when resuming, else a new folder."""
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    runs: list[dict[str, Any]] = []
    if resume and (out / "runs.csv").is_file():
        if not cfg_path.is_file() or json.loads(cfg_path.read_text()) != json.loads(config.to_json()):
            raise InputError(f"{out} holds results of another configuration; use a new folder or resume=False")
        runs = read_runs(out / "runs.csv")
    elif (out / "runs.csv").exists():
        raise FileExistsError(f"{out} already holds results (runs.csv); choose a new folder or resume")
    _write_text_atomic(cfg_path, config.to_json() + "\n")
    return runs


@dataclass
class _Data:
    """The evaluation's data: training pools per set, the test window and its ground truth."""

    pools: dict[str, list[Any]]
    skipped: dict[str, str]
    test: Any
    gt_dir: Path
    info: dict[str, Any]
    raw: dict[str, list[Any]] = field(default_factory=dict)  # Cellpose's (images, masks) parts per set


def _prepare_data(config: ExperimentConfig, out: Path):
    """Job: real training pool, test window and ground truth, synthetic pools."""
    from ..runtime.device import resolve_device

    yield Progress(0, 3, "reading the real sequence", stage="prepare")
    real = load_sequence(config.real)
    n = real.n_frames if not config.max_frames else min(config.max_frames, real.n_frames)
    train_frames, test_frames = split_frames(n, config.split)
    f = config.downsample
    crop = tuple(config.crop) or None
    gt_dir = out / "gt" / "01_GT"
    gt_info = write_gt_window(real, test_frames, gt_dir, factor=f, crop=crop)
    test = window_images(real, test_frames, factor=f, crop=crop)
    pools: dict[str, list[Any]] = {}  # training set name -> its pools, in name order
    raw: dict[str, list[Any]] = {}  # the same for Cellpose: (images, masks) per part
    skipped: dict[str, str] = {}
    real_pool = real_raw = None
    cellpose = config.segmenter == "cellpose"
    if cellpose:
        from .cellpose_seg import cellpose_pairs, require_cellpose

        require_cellpose()
    if any("real" in s.split("+") for s in config.sets):
        real_pairs = training_pairs(real, train_frames, factor=f, label_source="auto")
        real_pool = prepare_pool("real", real_pairs, config.net)
        real_raw = cellpose_pairs(real_pairs) if cellpose else None
        if cellpose and not real_raw[0]:
            skipped.update({s: "no fully annotated real training frame for Cellpose"
                            for s in config.sets if "real" in s.split("+")})
        elif "real" in config.sets:
            pools["real"] = [real_pool]
            raw["real"] = [real_raw]
    yield Progress(1, 3, "reading synthetic data", stage="prepare")
    sf = config.synthetic_downsample or f
    for key, path in (("synthetic", config.synthetic), ("classical", config.classical)):
        wanted = [s for s in config.sets if key in s.split("+")]
        if not wanted:
            continue
        if not path:
            skipped.update({s: f"no {key} data given" for s in wanted})
            continue
        pairs = _load_synthetic(path, sf, config.max_synthetic_frames, key)
        pool = prepare_pool(key, pairs, config.net)
        part = cellpose_pairs(pairs) if cellpose else None
        if key in wanted:
            pools[key] = [pool]
            raw[key] = [part]
        if f"real+{key}" in wanted and f"real+{key}" not in skipped:
            pools[f"real+{key}"] = [real_pool, pool]
            raw[f"real+{key}"] = [real_raw, part]
    del real
    info = {
        "real": config.real,
        "train_frames": [train_frames.start, train_frames.stop - 1],
        "test_frames": [test_frames.start, test_frames.stop - 1],
        "test_shape": list(test.shape),
        "gt": gt_info,
        "pool_sizes": {p.name: len(p.images) for parts in pools.values() for p in parts},
        "segmenter": config.segmenter,
        **({"cellpose_frames": {k: [len(part[0]) for part in v] for k, v in raw.items()}} if cellpose else {}),
        "device": str(resolve_device(config.train.device)),
    }
    _write_text_atomic(out / "info.json", json.dumps(info, indent=2) + "\n")
    yield Progress(3, 3, "data ready", stage="prepare")
    return _Data(pools, skipped, test, gt_dir, info, raw)


def _one_run(config: ExperimentConfig, out: Path, data: _Data, name: str, seed: int, cancel):
    """Job: train on one set with one seed, segment and track the test window, score; returns the row."""
    tcfg = config.train.replace(seed=seed)
    t0 = time.monotonic()
    losses: list[float] = []
    if config.segmenter == "cellpose":
        from ..runtime.device import resolve_device
        from .cellpose_seg import segment_cellpose, train_cellpose

        gen = train_cellpose(data.raw[name], config.cellpose, seed=seed, device=str(resolve_device(tcfg.device)),
                             cancel=cancel, **_mixing(name.split("+"), config.real_share))
    else:
        gen = train_segnet(data.pools[name], config.net, tcfg, cancel=cancel,
                           **_mixing(name.split("+"), config.real_share))
    try:
        while True:
            ev = next(gen)
            losses.append(ev.metrics.get("loss", math.nan))
            ev.message = f"{name} seed {seed}: {ev.message}"
            yield ev
    except StopIteration as stop:
        model = stop.value
    t1 = time.monotonic()
    if config.segmenter == "cellpose":
        masks = yield from segment_cellpose(model, data.test, config.cellpose, cancel=cancel)
    else:
        device = next(model.parameters()).device
        masks = yield from segment_frames(model, data.test, config.net, device=device, cancel=cancel)
    tracks, lineage = track_instances(masks, config.tracker)
    run_dir = out / "runs" / f"{name}-seed{seed}"
    write_res(run_dir / "01_RES", tracks, lineage)
    if config.save_weights and config.segmenter == "segnet":
        save_segnet(run_dir / "segnet.safetensors", model, config.net,
                    {"set": name, "seed": seed, "train": tcfg.to_dict()})
    t2 = time.monotonic()
    yield Progress(0, 1, f"{name} seed {seed}: scoring with py-ctcmetrics", stage="score")
    scores = score_result(run_dir / "01_RES", data.gt_dir, config.metrics, errors=True)
    t3 = time.monotonic()
    row: dict[str, Any] = {"set": name, "seed": seed, **scores,
                           "n_tracks": len(lineage),
                           "n_divisions": int(len(np.unique(lineage[lineage[:, 3] > 0, 3]))),
                           "train_s": t1 - t0, "segment_s": t2 - t1, "score_s": t3 - t2,
                           "final_loss": losses[-1] if losses else math.nan}
    for m in METRICS:
        row.setdefault(m, math.nan)
    return row


def _write_summary_csv(path: Path, summary: dict[str, dict[str, tuple]], metrics: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["set", *[f"{m}_{s}" for m in metrics for s in ("mean", "std", "n")]])
    for name, row in summary.items():
        w.writerow([name, *[f"{row[m][0]:.6g}" if i == 0 else (f"{row[m][1]:.6g}" if i == 1 else row[m][2])
                            for m in metrics for i in range(3)]])
    _write_text_atomic(path, buf.getvalue())
