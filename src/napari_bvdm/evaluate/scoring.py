"""Write a tracking result as CTC ``NN_RES`` and score it with py-ctcmetrics.

py-ctcmetrics (the Cell Tracking Challenge's Python evaluator) is an optional dependency of the
evaluation: ``pip install py-ctcmetrics``. Its cost is about 0.5 s per megapixel-frame on one core,
which is why the evaluation works on downsampled / cropped frames on a CPU.
"""

from __future__ import annotations

import contextlib
import io
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import _atomic_dir, _commit_dir, write_ctc_labels

__all__ = ["METRICS", "AOGM_ERRORS", "write_res", "score_result", "validate_result", "require_ctc_metrics"]

METRICS = ("SEG", "DET", "TRA", "LNK")
#: The graph operations behind TRA (Matula et al. 2015), with their AOGM weights: split vertices,
#: false negative and false positive vertices, edges to delete, edges to add, edges with the wrong
#: semantics (a division link where a plain one belongs, or the reverse).
AOGM_ERRORS = {"NS": 5.0, "FN": 10.0, "FP": 1.0, "ED": 1.0, "EA": 1.5, "EC": 1.0}


def require_ctc_metrics():
    """Import py-ctcmetrics or raise an ImportError that says how to install it."""
    try:
        import ctc_metrics
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "scoring needs py-ctcmetrics (the Cell Tracking Challenge evaluator): "
            "pip install py-ctcmetrics"
        ) from e
    return ctc_metrics


def write_res(res_dir: str | Path, tracks: np.ndarray, lineage: np.ndarray) -> Path:
    """Write ``maskTTT.tif`` (uint16) and ``res_track.txt`` into ``res_dir`` atomically.

    py-ctcmetrics 1.3.3 assumes that every mask holds some background (it drops the smallest label
    of a frame as if it were 0), so a frame that is foreground everywhere gets its corner pixel set
    to 0 (objects are larger than one pixel, so no track loses its last pixel).
    """
    res_dir = Path(res_dir)
    tracks = np.asarray(tracks)
    full = [t for t in range(tracks.shape[0]) if tracks[t].min() > 0]
    if full:
        tracks = tracks.copy()
        for t in full:
            lab = tracks[t, 0, 0]
            if (tracks[t] == lab).sum() < 2:
                raise ValueError(f"frame {t}: no background and a one-pixel object at the corner")
            tracks[t, 0, 0] = 0
    tmp = _atomic_dir(res_dir)
    try:
        write_ctc_labels(tmp, "mask", np.asarray(tracks), np.asarray(lineage), "res_track.txt")
        _commit_dir(tmp, res_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return res_dir


def _is_empty(res_dir: Path) -> bool:
    track_file = res_dir / "res_track.txt"
    return track_file.is_file() and not track_file.read_text().strip()


def _has_seg(gt_dir: Path) -> bool:
    seg = gt_dir / "SEG"
    return seg.is_dir() and any(seg.glob("man_seg*.tif"))


def score_result(
    res_dir: str | Path,
    gt_dir: str | Path,
    metrics: Sequence[str] = METRICS,
    *,
    threads: int = 1,
    quiet: bool = True,
    errors: bool = False,
) -> dict[str, float]:
    """Score ``res_dir`` against ``gt_dir`` (a CTC ``NN_GT`` folder) with py-ctcmetrics.

    Returns a dict with the requested measures (``nan`` for SEG when the GT window holds no SEG
    frame) and ``Valid`` (1.0 when the result passed py-ctcmetrics' checks). A result with no
    object at all (a network that found no cell) scores 0 on every measure: py-ctcmetrics 1.3.3
    cannot read an empty ``res_track.txt``, and the CTC measures of an empty result are 0 (every
    reference object missed).

    With ``errors=True`` and TRA among the measures, the result also holds the counts behind TRA:
    ``AOGM_NS``, ``AOGM_FN``, ``AOGM_FP``, ``AOGM_ED``, ``AOGM_EA``, ``AOGM_EC`` (see
    :data:`AOGM_ERRORS`), plus ``AOGM`` (their weighted sum) and ``AOGM_0`` (the cost of building
    the reference graph from nothing; TRA = 1 - AOGM / AOGM_0). They say where tracking loses:
    missed cells (FN), extra detections (FP), merged cells (NS) or wrong links (ED, EA, EC).
    """
    require_ctc_metrics()
    from ctc_metrics import evaluate_sequence

    gt_dir = Path(gt_dir)
    metrics = [m.upper() for m in metrics]
    unknown = sorted(set(metrics) - {"SEG", "DET", "TRA", "LNK"})
    if unknown:
        raise ValueError(f"unknown measure(s) {unknown}; use SEG, DET, TRA, LNK")
    asked = list(metrics)
    if "SEG" in metrics and not _has_seg(gt_dir):
        metrics = [m for m in metrics if m != "SEG"]
    scores: dict = {}
    if metrics and _is_empty(Path(res_dir)):
        scores = {m: 0.0 for m in metrics} | {"Valid": 1.0}
    elif metrics:
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
            scores = evaluate_sequence(str(res_dir), str(gt_dir), metrics=metrics, threads=threads)
    out = {m: float(scores.get(m, math.nan)) if scores.get(m) is not None else math.nan for m in asked}
    out["Valid"] = float(scores.get("Valid", 1.0 if metrics else math.nan))
    if errors and "TRA" in metrics:
        if _is_empty(Path(res_dir)):
            scores = _empty_result_errors(gt_dir)
        for k in (*(f"AOGM_{e}" for e in AOGM_ERRORS), "AOGM", "AOGM_0"):
            out[k] = float(scores.get(k, math.nan))
    return out


def _empty_result_errors(gt_dir: Path) -> dict[str, float]:
    """The AOGM counts of an empty result: every reference vertex and edge missing."""
    lines = [ln.split() for ln in (gt_dir / "TRA" / "man_track.txt").read_text().splitlines() if ln.strip()]
    n_vertices = sum(int(e) - int(b) + 1 for _, b, e, _ in lines)
    n_edges = sum(int(e) - int(b) for _, b, e, _ in lines)
    begin = {int(lab): int(b) for lab, b, _, _ in lines}
    n_edges += sum(1 for _, b, _, p in lines if int(p) > 0 and int(p) in begin)
    out = {f"AOGM_{e}": 0.0 for e in AOGM_ERRORS}
    out["AOGM_FN"], out["AOGM_EA"] = float(n_vertices), float(n_edges)
    out["AOGM"] = out["AOGM_0"] = AOGM_ERRORS["FN"] * n_vertices + AOGM_ERRORS["EA"] * n_edges
    return out


def validate_result(res_dir: str | Path) -> bool:
    """py-ctcmetrics' validity check of a result folder (no GT needed)."""
    require_ctc_metrics()
    from ctc_metrics import validate_sequence

    with contextlib.redirect_stdout(io.StringIO()):
        res = validate_sequence(str(res_dir), threads=1)
    return bool(res.get("Valid", 0))
