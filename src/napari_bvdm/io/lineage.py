"""CTC lineage tables (``L B E P``): parse, format, derive from label videos, convert for napari.

A lineage is an ``(N, 4)`` int64 array of rows ``L B E P`` sorted by ``L``: label, first frame,
last frame (inclusive), parent label or 0 (see ``../shared/docs/ctc-format.md`` §1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .video import InputError

__all__ = [
    "empty_lineage",
    "parse_track_file",
    "read_track_file",
    "format_track_file",
    "write_track_file",
    "label_spans",
    "frame_label_sets",
    "lineage_from_labels",
    "lineage_to_graph",
    "tracks_from_labels",
    "label_centroids",
    "clip_lineage",
]

_INT_LINE = re.compile(r"^\s*(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s*$")


def empty_lineage() -> np.ndarray:
    """An empty ``(0, 4)`` int64 lineage."""
    return np.zeros((0, 4), np.int64)


def parse_track_file(text: str, source: str = "man_track.txt") -> np.ndarray:
    """Parse the text of a CTC track file into an ``(N, 4)`` int64 array sorted by ``L``.

    Whitespace between the four numbers is accepted leniently here (tabs, several spaces); the
    validator reports separator problems separately. Empty lines are skipped.

    Raises
    ------
    InputError
        A line that is not four integers, a negative value, or a label that is 0.
    """
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _INT_LINE.match(line)
        if not m:
            raise InputError(
                f"{source}, line {i}: {line.strip()[:60]!r} is not four integers 'L B E P'; "
                "each line must be label, begin frame, end frame, parent (0 = none)"
            )
        row = [int(g) for g in m.groups()]
        if min(row) < 0:
            raise InputError(f"{source}, line {i}: negative value in {row}; L B E P must be >= 0")
        if row[0] == 0:
            raise InputError(f"{source}, line {i}: label 0 is the background and cannot be a track")
        rows.append(row)
    if not rows:
        return empty_lineage()
    arr = np.asarray(rows, np.int64)
    return arr[np.argsort(arr[:, 0], kind="stable")]


def read_track_file(path: str | Path) -> np.ndarray:
    """Read ``man_track.txt`` / ``res_track.txt`` (see :func:`parse_track_file`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"track file {path} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(f"track file {path} is not a text file") from None
    return parse_track_file(text, str(path))


def format_track_file(lineage: np.ndarray) -> str:
    """``L B E P`` lines, single spaces, LF endings, sorted by ``L`` (empty string for none)."""
    lin = np.asarray(lineage, np.int64).reshape(-1, 4)
    lin = lin[np.argsort(lin[:, 0], kind="stable")]
    return "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in lin.tolist())


def write_track_file(path: str | Path, lineage: np.ndarray) -> None:
    """Write :func:`format_track_file` output (binary mode, so LF on every platform)."""
    Path(path).write_bytes(format_track_file(lineage).encode("ascii"))


def _check_label_frame(f: np.ndarray) -> None:
    if f.dtype.kind not in "iub":
        raise InputError(f"labels have dtype {f.dtype}; label images must hold integers")
    if f.size and f.dtype.kind == "i" and f.min() < 0:
        raise InputError(f"labels contain negative values (min {f.min()}); labels must be >= 0")


def frame_label_sets(labels: Iterable[np.ndarray]) -> list[np.ndarray]:
    """Sorted non-zero labels of each frame (streamed: frames are read one at a time)."""
    out = []
    for frame in labels:
        f = np.asarray(frame)
        _check_label_frame(f)
        if f.size and f.max() < 2**20:
            counts = np.bincount(f.ravel())
            ids = np.flatnonzero(counts)
        else:
            ids = np.unique(f)
        out.append(ids[ids != 0].astype(np.int64))
    return out


def label_spans(per_frame: list[np.ndarray]) -> dict[int, list[int]]:
    """For each label, the sorted frames it appears in."""
    spans: dict[int, list[int]] = {}
    for t, ids in enumerate(per_frame):
        for lab in ids.tolist():
            spans.setdefault(int(lab), []).append(t)
    return spans


def lineage_from_labels(
    labels,
    parents: dict[int, int] | None = None,
    *,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """CTC tracks from a label video whose labels are consistent over time.

    Each label becomes a track from its first to its last frame. Where a label is missing for one
    or more frames, the track is split: the part after the gap gets a **new** label (above all
    existing ones) whose parent is the label before the gap, so the result satisfies every CTC
    validity rule by construction (``ctc-format.md`` §5.4).

    Parameters
    ----------
    labels : array-like (T, Y, X) of non-negative integers
        Label video (a lazy :class:`~napari_bvdm.io.lazy.FrameStack` is read frame by frame).
    parents : dict {label: parent label}, optional
        Division links of the input labels (e.g. from a simulator). A parent must end before its
        child begins; for a split track the parent link stays on the first piece.
    out : ndarray, optional
        Where to write the relabelled video (default: a new uint16 array, or uint32 when the
        labels do not fit).

    Returns
    -------
    relabelled : ndarray (T, Y, X)
        Same as ``labels`` except that pieces after gaps carry their new labels.
    lineage : ndarray (N, 4) int64
        ``L B E P`` rows sorted by ``L``.

    Raises
    ------
    InputError
        Float or negative labels, or a parent that does not end before its child begins.
    """
    dtype = np.dtype(labels.dtype)
    if dtype.kind == "f" or dtype.kind not in "iub":
        raise InputError(f"labels have dtype {dtype}; label videos must hold integers (0 = background)")
    n = len(labels)
    spans = label_spans(frame_label_sets(labels[t] for t in range(n)))
    parents = dict(parents or {})
    rows, remap = _split_at_gaps(spans, parents, n)
    lineage = np.asarray(rows, np.int64).reshape(-1, 4)
    lineage = lineage[np.argsort(lineage[:, 0], kind="stable")]
    _check_parents(parents, spans, lineage)
    max_label = int(lineage[:, 0].max()) if len(lineage) else 0
    out_dtype = np.uint16 if max_label <= np.iinfo(np.uint16).max else np.uint32
    if out is None:
        out = np.empty((n,) + tuple(labels.shape[1:]), out_dtype)
    _write_relabelled(labels, remap, out)
    # Mothers that end later than the later piece of a split daughter are not possible here:
    # new labels only continue their own track.
    return out, lineage


def _split_at_gaps(
    spans: dict[int, list[int]], parents: dict[int, int], n: int,
) -> tuple[list[list[int]], list[dict[int, int]]]:
    """``L B E P`` rows of every gap-free piece, and per frame the ``{old: new}`` labels after gaps.

    The piece after a gap gets the next label above all existing ones and the piece before it as
    parent; the first piece keeps the label and its entry in ``parents``.
    """
    next_label = (max(spans) if spans else 0) + 1
    rows: list[list[int]] = []
    remap: list[dict[int, int]] = [dict() for _ in range(n)]
    for lab in sorted(spans):
        frames = spans[lab]
        start = frames[0]
        current, parent = lab, int(parents.get(lab, 0))
        for prev, t in zip(frames, frames[1:] + [None], strict=False):
            if t is not None and t == prev + 1:
                continue
            rows.append([current, start, prev, parent])
            if t is None:
                break
            parent, current, start = current, next_label, t
            next_label += 1
            for tt in frames[frames.index(t):]:
                if tt > prev:
                    remap[tt][lab] = current
    return rows, remap


def _check_parents(parents: dict[int, int], spans: dict[int, list[int]], lineage: np.ndarray) -> None:
    """Raise :class:`InputError` for a parent that never appears or does not end before its child."""
    ends = {int(r[0]): int(r[2]) for r in lineage}
    for lab, par in parents.items():
        if par and lab in spans:
            if par not in ends:
                raise InputError(f"parent {par} of label {lab} never appears in the label video")
            if ends[par] >= spans[lab][0]:
                raise InputError(
                    f"label {lab} starts at frame {spans[lab][0]} but its parent {par} is still "
                    f"present at frame {ends[par]}; a daughter must start after its mother ends"
                )


def _write_relabelled(labels, remap: list[dict[int, int]], out: np.ndarray) -> None:
    """Copy ``labels`` frame by frame into ``out``, applying ``remap[t]`` to frame ``t``."""
    for t in range(len(remap)):
        frame = np.asarray(labels[t])
        if remap[t]:
            lut_keys = np.fromiter(remap[t].keys(), np.int64)
            lut_vals = np.fromiter(remap[t].values(), np.int64)
            f = frame.astype(np.int64)
            res = f.copy()
            for k, v in zip(lut_keys.tolist(), lut_vals.tolist(), strict=False):
                res[f == k] = v
            out[t] = res
        else:
            out[t] = frame


def lineage_to_graph(lineage: np.ndarray) -> dict[int, list[int]]:
    """napari Tracks graph ``{daughter: [mother]}`` from a lineage."""
    lin = np.asarray(lineage, np.int64).reshape(-1, 4)
    return {int(L): [int(P)] for L, _b, _e, P in lin.tolist() if P != 0}


def label_centroids(labels) -> tuple[np.ndarray, list[np.ndarray]]:
    """Centroid of every label in every frame, in one pass over the video.

    Returns
    -------
    data : ndarray (M, 4) float64
        Rows ``label, t, y, x`` sorted by label, then time (napari Tracks order).
    per_frame : list of int64 arrays
        The labels of each frame (for :func:`~napari_bvdm.io.validator.check_lineage`).
    """
    rows = []
    per_frame = []
    for t in range(len(labels)):
        frame = np.asarray(labels[t])
        _check_label_frame(frame)
        ys, xs = np.nonzero(frame)
        lab = frame[ys, xs].astype(np.int64)
        counts = np.bincount(lab)
        ids = np.flatnonzero(counts)
        per_frame.append(ids.astype(np.int64))
        if len(ids):
            cy = np.bincount(lab, ys)[ids] / counts[ids]
            cx = np.bincount(lab, xs)[ids] / counts[ids]
            rows.append(np.stack([ids, np.full(len(ids), t), cy, cx], axis=1))
    data = np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, 4))
    if len(data):
        data = data[np.lexsort((data[:, 1], data[:, 0]))]
    return data, per_frame


def tracks_from_labels(labels, lineage: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """napari Tracks data ``(track_id, t, y, x)`` (centroids per frame) and graph.

    Parameters
    ----------
    labels : array-like (T, Y, X)
        Track-id label video (CTC TRA markers or RES masks); read frame by frame.
    lineage : (N, 4) array, optional
        For the graph; links whose daughter or mother has no points are left out.

    Returns
    -------
    data : ndarray (M, 4) float64
        Rows ``track_id, t, y, x`` sorted by track then time.
    graph : dict
        ``{daughter: [mother]}``.
    """
    data, _ = label_centroids(labels)
    return data, _graph_for(data, lineage)


def _graph_for(data: np.ndarray, lineage: np.ndarray | None) -> dict[int, list[int]]:
    if lineage is None or not len(data):
        return {}
    present = set(int(i) for i in np.unique(data[:, 0]))
    return {d: m for d, m in lineage_to_graph(lineage).items() if d in present and m[0] in present}


def clip_lineage(lineage: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The lineage of frames ``start..stop-1``, renumbered so that ``start`` becomes frame 0.

    Tracks outside the window are dropped, spans are clipped, and a parent link is kept only when
    the parent is still in the window (it always ends before its child begins, so it is).
    """
    lin = np.asarray(lineage, np.int64).reshape(-1, 4)
    keep = (lin[:, 1] < stop) & (lin[:, 2] >= start)
    out = lin[keep].copy()
    out[:, 1] = np.maximum(out[:, 1], start) - start
    out[:, 2] = np.minimum(out[:, 2], stop - 1) - start
    kept = set(out[:, 0].tolist())
    out[:, 3] = [p if p in kept else 0 for p in out[:, 3].tolist()]
    return out
