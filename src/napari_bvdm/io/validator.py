"""Our own CTC validator: the ten validity rules of ``ctc-format.md`` §2 plus naming checks.

:func:`validate_ctc` checks a GT folder (``NN_GT``), a result folder (``NN_RES``), a sequence
folder (``NN`` with ``NN_GT`` beside it) or a dataset folder, and returns a list of
:class:`Violation` (empty = valid). Every message names the rule, and where it applies the label
and the frame.

Rules (java-ctcmetrics ``TRA.CheckConsistency`` / ``TrackDataCache.LoadTrackFile``):

1. each L appears once in the track file
2. B <= E
3. 0 <= B and E < number of frames
4. label L present (>= 1 px) in every frame B..E
5. P != 0 => track P exists
6. P != 0 => parent's E < child's B
7. every label in an image is declared in the track file
8. a label found at time t has B <= t <= E
9. label images are 16-bit
10. GT/RES (and raw/label) image pairs have the same size

Extra checks (rule ``"naming"`` / ``"format"`` / ``"file"``): file names ``tTTT``/``man_trackTTT``/
``man_segTTT``/``maskTTT`` with one digit width (3, or 4 for >= 1000 frames, more beyond 10,000), frames numbered 0..T-1
without gaps, track file lines of four integers separated by single spaces with LF endings, sorted by L,
numbers that fit in uint32; every raw frame's header (an empty, truncated or damaged file, a file that
is no TIFF, a frame of another size or pixel type than the first; with ``deep=True`` every raw frame is
also decoded); every label image is decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .readers import TiffHeader

__all__ = ["Violation", "check_lineage", "validate_ctc", "format_report"]


@dataclass(frozen=True)
class Violation:
    """One broken rule.

    Attributes
    ----------
    rule : int or str
        1-10 for the CTC rules, ``"naming"``, ``"format"`` or ``"file"`` (a file that cannot be read)
        for the extra checks.
    message : str
        What is wrong, naming the label and frame where they apply.
    label : int or None
        The track label concerned.
    frame : int or None
        The frame concerned.
    path : str
        File or folder concerned.
    """

    rule: int | str
    message: str
    label: int | None = None
    frame: int | None = None
    path: str = ""

    def __str__(self) -> str:
        r = f"rule {self.rule}" if isinstance(self.rule, int) else self.rule
        return f"[{r}] {self.message}"


def check_lineage(lineage: np.ndarray, per_frame: list[np.ndarray], n_frames: int | None = None,
                  *, path: str = "") -> list[Violation]:
    """Rules 1-8: a lineage table against the labels present in each frame.

    Parameters
    ----------
    lineage : (N, 4) int array ``L B E P``
    per_frame : list of int arrays
        The non-zero labels of each frame (see :func:`~napari_bvdm.io.lineage.frame_label_sets`).
    n_frames : int, optional
        Number of frames of the sequence (default ``len(per_frame)``).
    """
    n = len(per_frame) if n_frames is None else int(n_frames)
    lin = np.asarray(lineage, np.int64).reshape(-1, 4)
    out: list[Violation] = []
    tracks: dict[int, tuple[int, int, int]] = {}
    for L, B, E, P in lin.tolist():
        if L in tracks:
            out.append(Violation(1, f"track {L} is declared more than once in the track file",
                                 label=L, path=path))
            continue
        tracks[L] = (B, E, P)
    for L, (B, E, P) in tracks.items():
        if B > E:
            out.append(Violation(2, f"track {L} ends (E={E}) before it begins (B={B})", label=L,
                                 path=path))
        if B < 0 or E >= n:
            out.append(Violation(3, f"track {L} (B={B}, E={E}) begins or ends outside the "
                                    f"{n} frames 0..{n - 1}", label=L, path=path))
        if P != 0:
            if P not in tracks:
                out.append(Violation(5, f"track {L} refers to parent {P}, which is not in the "
                                        "track file", label=L, path=path))
            elif tracks[P][1] >= B:
                out.append(Violation(6, f"track {L} begins at frame {B} but its parent {P} ends at "
                                        f"frame {tracks[P][1]}; the parent must end before the "
                                        "child begins", label=L, frame=B, path=path))
    present = [set(ids.tolist()) for ids in per_frame]
    for L, (B, E, _P) in tracks.items():
        missing = [t for t in range(max(B, 0), min(E, n - 1) + 1)
                   if t < len(present) and L not in present[t]]
        if missing:
            more = f" (and {len(missing) - 1} more frames)" if len(missing) > 1 else ""
            out.append(Violation(4, f"track {L} (B={B}, E={E}) is missing from the image at frame "
                                    f"{missing[0]}{more}", label=L, frame=missing[0], path=path))
    undeclared: dict[int, int] = {}
    outside: dict[int, int] = {}
    for t, ids in enumerate(present):
        for L in ids:
            if L not in tracks:
                undeclared.setdefault(L, t)
            else:
                B, E, _ = tracks[L]
                if not B <= t <= E:
                    outside.setdefault(L, t)
    for L, t in sorted(undeclared.items()):
        out.append(Violation(7, f"label {L} found in the image at frame {t} is not declared in "
                                "the track file", label=L, frame=t, path=path))
    for L, t in sorted(outside.items()):
        B, E, _ = tracks[L]
        out.append(Violation(8, f"label {L} found at frame {t} is outside its declared span "
                                f"B={B}..E={E}", label=L, frame=t, path=path))
    return out


# --------------------------------------------------------------------------------------------
# track-file format
# --------------------------------------------------------------------------------------------
_STRICT_LINE = re.compile(r"^\d+ \d+ \d+ \d+$")


def _check_track_text(path: Path) -> tuple[list[Violation], np.ndarray | None]:
    from .lineage import parse_track_file
    from .readers import check_track_text
    from .video import InputError

    out: list[Violation] = []
    raw = path.read_bytes()
    if b"\r" in raw:
        out.append(Violation("format", f"{path.name} has CR (Windows/Mac) line endings; use LF",
                             path=str(path)))
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return [Violation("format", f"{path.name} is not plain ASCII text", path=str(path))], None
    bad_lines = set()
    for i, line in enumerate(text.replace("\r", "").split("\n"), 1):
        if line and not _STRICT_LINE.match(line):
            bad_lines.add(i)
            out.append(Violation("format", f"{path.name}, line {i}: {line[:40]!r} is not four "
                                 "integers separated by single spaces", path=str(path)))
    try:
        check_track_text(text, path.name)
        lin = parse_track_file(text, str(path))
    except InputError as e:
        where = re.search(r", line (\d+):", str(e))
        if where and int(where.group(1)) in bad_lines:  # that line is reported above already
            return out, None
        return out + [Violation("format", str(e), path=str(path))], None
    rows = [r for r in text.replace("\r", "").split("\n") if r.strip()]
    firsts = [int(r.split()[0]) for r in rows if r.split() and r.split()[0].isdigit()]
    if firsts != sorted(firsts):
        out.append(Violation("format", f"{path.name} is not sorted by label", path=str(path)))
    return out, lin


# --------------------------------------------------------------------------------------------
# folder validation
# --------------------------------------------------------------------------------------------
def _indexed(folder: Path, prefix: str) -> tuple[list[tuple[int, Path, int]], list[Violation]]:
    """(index, path, digit width) of ``prefixTTT.tif`` files, plus naming violations."""
    pat = re.compile(rf"^{re.escape(prefix)}(\d+)\.tif$")
    out, bad = [], []
    if not folder.is_dir():
        return out, bad
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in (".tif", ".tiff"):
            continue
        m = pat.match(p.name)
        if not m:
            bad.append(Violation("naming", f"{p.name} in {folder.name}/ does not follow the name "
                                 f"pattern {prefix}TTT.tif", path=str(p)))
            continue
        out.append((int(m.group(1)), p, len(m.group(1))))
    out.sort()
    return out, bad


def name_digits(n_frames: int) -> int:
    """Digits of the frame index in CTC file names: 3, 4 from 1000 frames, and as many as the last index needs
    beyond 10,000 frames (CTC's own data stop below that)."""
    return max(4 if n_frames >= 1000 else 3, len(str(max(n_frames - 1, 0))))


def _width_ok(widths: set[int], n_frames: int) -> bool:
    return widths <= {name_digits(n_frames)}


def _read_pixels(p: Path, header: TiffHeader | None = None) -> np.ndarray:
    """A TIFF's pixels; :class:`~napari_bvdm.io.readers.FileProblem` when the file cannot be read.

    ``header`` (:class:`~napari_bvdm.io.readers.TiffHeader`) is read when not given.
    """
    import tifffile

    from .lazy import check_memory
    from .readers import decode_tiff, read_tiff_header

    header = header or read_tiff_header(p)
    check_memory(header.nbytes, f"reading {p}")
    return decode_tiff(p, lambda: tifffile.imread(p))


def _check_label_folder(files, n_frames: int, tracks_lin, kind: str, *, every_frame: bool,
                        ref_shape, out: list[Violation]) -> list[np.ndarray] | None:
    """Rules 9, 10 and frame coverage for one label folder; returns per-frame label sets."""
    from .lineage import frame_label_sets
    from .readers import LABEL_MAX, FileProblem

    idx = [t for t, _, _ in files]
    if every_frame:
        missing = sorted(set(range(n_frames)) - set(idx))
        if missing:
            out.append(Violation("naming", f"{kind}: no label image for frame(s) {missing[:5]}"
                                 f"{' ...' if len(missing) > 5 else ''}; one is needed for every "
                                 "frame", frame=missing[0]))
    extra = [t for t in idx if t >= n_frames]
    if extra:
        out.append(Violation(3, f"{kind}: label image for frame {extra[0]} but the sequence has "
                             f"{n_frames} frames", frame=extra[0]))
    per_frame: list[np.ndarray] = [np.zeros(0, np.int64) for _ in range(n_frames)]
    seen_shape = ref_shape
    for t, p, _w in files:
        try:
            arr = _read_pixels(p)
        except FileProblem as e:
            out.append(Violation("file", f"{kind}: {p.name} {e.problem}", frame=t, path=str(p)))
            continue
        if arr.dtype != np.uint16:
            out.append(Violation(9, f"{kind}: {p.name} has {arr.dtype} pixels; label images must "
                                 "be 16-bit (uint16)", frame=t, path=str(p)))
        if arr.ndim != 2:
            out.append(Violation(10, f"{kind}: {p.name} has shape {arr.shape}; expected one 2D "
                                 "image", frame=t, path=str(p)))
            continue
        if seen_shape is None:
            seen_shape = arr.shape
        elif arr.shape != tuple(seen_shape):
            out.append(Violation(10, f"{kind}: {p.name} is {arr.shape[1]}x{arr.shape[0]} but the "
                                 f"other images are {seen_shape[1]}x{seen_shape[0]}", frame=t,
                                 path=str(p)))
        if arr.dtype.kind not in "iu":
            continue
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            out.append(Violation(9, f"{kind}: {p.name} has negative labels (min {arr.min()}); label images "
                                 "must be unsigned 16-bit", frame=t, path=str(p)))
            continue
        if arr.dtype.itemsize > 4 and arr.size and int(arr.max()) > LABEL_MAX:
            out.append(Violation(9, f"{kind}: {p.name} has label {int(arr.max())}, larger than {LABEL_MAX}; "
                                 "label images must be unsigned 16-bit", frame=t, path=str(p)))
            continue
        if t < n_frames:
            per_frame[t] = frame_label_sets([arr])[0]
    return per_frame


def validate_ctc(path: str | Path, *, n_frames: int | None = None, deep: bool = False) -> list[Violation]:
    """Validate a CTC folder; an empty list means valid.

    Parameters
    ----------
    path : path
        ``DS/NN_GT`` or ``DS/NN_RES`` (checked alone), ``DS/NN`` (its ``NN_GT`` and ``NN_RES``
        against the raw frames) or a dataset folder ``DS`` (every sequence in it).
    n_frames : int, optional
        Number of frames, when no raw frames are beside a GT/RES folder (default: the raw frame
        count, else the number of TRA/RES images).
    deep : bool
        Also decode every raw frame (slow: reads the whole video); by default only each raw frame's
        header is checked (readable, not truncated, same size and pixel type as the first frame).
        Label images are always decoded.

    Returns
    -------
    list of Violation
        Sorted by folder, then rule.
    """
    from .readers import _ANNOT_DIR, _SEQ_DIR

    path = Path(path)
    if not path.exists():
        return [Violation("naming", f"{path} does not exist", path=str(path))]
    if not path.is_dir():
        return [Violation("naming", f"{path} is not a folder; give a CTC dataset, sequence, "
                          "NN_GT or NN_RES folder", path=str(path))]
    m = _ANNOT_DIR.match(path.name)
    if m:
        seq = m.group(1)
        kind = m.group(2)
        if kind in ("GT", "RES"):
            return _validate_part(path.parent, seq, kind, n_frames)
        return _validate_sequence(path.parent, seq, n_frames, deep)
    if _SEQ_DIR.match(path.name):
        return _validate_sequence(path.parent, path.name, n_frames, deep)
    seqs = sorted({(mm.group(1) if (mm := _ANNOT_DIR.match(p.name)) else p.name)
                   for p in path.iterdir()
                   if p.is_dir() and (_SEQ_DIR.match(p.name) or _ANNOT_DIR.match(p.name))})
    if not seqs:
        return [Violation("naming", f"{path} holds no CTC sequence (NN/, NN_GT/, NN_RES/)",
                          path=str(path))]
    out: list[Violation] = []
    for s in seqs:
        out += _validate_sequence(path, s, n_frames, deep)
    return out


def _raw_info(dataset: Path, seq: str) -> tuple[int | None, tuple | None, list[Violation]]:
    """Number of raw frames, the shape of the first readable one, and naming violations."""
    from .readers import FileProblem, read_tiff_header

    files, bad = _indexed(dataset / seq, "t")
    if not files:
        return None, None, bad
    idx = [t for t, _, _ in files]
    n = max(idx) + 1
    if idx != list(range(n)):
        missing = sorted(set(range(n)) - set(idx))
        bad.append(Violation("naming", f"{seq}/: raw frames missing: {missing[:5]}",
                             frame=missing[0], path=str(dataset / seq)))
    if not _width_ok({w for _, _, w in files}, n):
        bad.append(Violation("naming", f"{seq}/: frame names must use {name_digits(n)} "
                             "digits (tTTT.tif)", path=str(dataset / seq)))
    shape = None
    for _, p, _ in files:
        try:
            shape = read_tiff_header(p).shape
            break
        except FileProblem:
            continue
    return n, shape, bad


def _check_raw_frames(dataset: Path, seq: str, *, deep: bool) -> list[Violation]:
    """Every raw frame's header (readable, one size and pixel type); with ``deep`` also its pixels."""
    from .readers import FileProblem, read_tiff_header

    files, _ = _indexed(dataset / seq, "t")
    out: list[Violation] = []
    ref = None
    for t, p, _ in files:
        name = f"{seq}/{p.name}"
        try:
            header = read_tiff_header(p)
            if deep:
                arr = _read_pixels(p, header)
                if arr.shape != header.shape or arr.dtype != header.dtype:
                    raise FileProblem(p, f"decodes to {arr.shape} {arr.dtype}, but its header says "
                                         f"{header.shape} {header.dtype}")
        except FileProblem as e:
            out.append(Violation("file", f"{name} {e.problem}", frame=t, path=str(p)))
            continue
        if ref is None:
            ref = (name, header)
            continue
        ref_name, ref_header = ref
        if header.shape != ref_header.shape:
            out.append(Violation(10, f"{name} has shape {header.shape} but {ref_name} has {ref_header.shape}; "
                                 "every frame must have the same size", frame=t, path=str(p)))
        elif header.dtype != ref_header.dtype:
            out.append(Violation("format", f"{name} has {header.dtype} pixels but {ref_name} has "
                                 f"{ref_header.dtype}; every frame must have one pixel type", frame=t,
                                 path=str(p)))
    return out


def _validate_sequence(dataset: Path, seq: str, n_frames: int | None, deep: bool = False) -> list[Violation]:
    out: list[Violation] = []
    n_raw, _, bad = _raw_info(dataset, seq)
    out += bad
    if n_raw is not None:
        out += _check_raw_frames(dataset, seq, deep=deep)
    found = False
    for kind in ("GT", "RES"):
        if (dataset / f"{seq}_{kind}").is_dir():
            found = True
            out += _validate_part(dataset, seq, kind, n_frames)
    if not found and n_raw is None:
        out.append(Violation("naming", f"{dataset / seq}: no raw frames and no {seq}_GT/{seq}_RES",
                             path=str(dataset / seq)))
    return out


def _validate_part(dataset: Path, seq: str, kind: str, n_frames: int | None) -> list[Violation]:
    """Validate ``NN_GT`` (TRA + SEG) or ``NN_RES`` against the raw frames when present."""
    folder = dataset / f"{seq}_{kind}"
    out: list[Violation] = []
    n_raw, raw_shape, _ = _raw_info(dataset, seq)
    if kind == "GT":
        tra_dir, prefix, txt = folder / "TRA", "man_track", folder / "TRA" / "man_track.txt"
    else:
        tra_dir, prefix, txt = folder, "mask", folder / "res_track.txt"
    where = f"{seq}_{kind}" + ("/TRA" if kind == "GT" else "")
    files, bad = _indexed(tra_dir, prefix)
    out += bad
    n = n_frames or n_raw or (max(t for t, _, _ in files) + 1 if files else 0)
    if files and not _width_ok({w for _, _, w in files}, n):
        out.append(Violation("naming", f"{where}: names must use {name_digits(n)} digits "
                             f"({prefix}TTT.tif) for {n} frames", path=str(tra_dir)))
    per_frame = None
    if files:
        per_frame = _check_label_folder(files, n, None, where, every_frame=True,
                                        ref_shape=raw_shape, out=out)
    if not txt.is_file():
        if files:
            out.append(Violation("naming", f"{where}: {txt.name} is missing", path=str(txt)))
    else:
        fmt, lin = _check_track_text(txt)
        out += [Violation(v.rule, f"{where}: {v.message}", v.label, v.frame, v.path) for v in fmt]
        if lin is not None and per_frame is not None:
            out += [Violation(v.rule, f"{where}: {v.message}", v.label, v.frame, str(txt))
                    for v in check_lineage(lin, per_frame, n)]
    if kind == "GT":
        seg_files, bad = _indexed(folder / "SEG", "man_seg")
        out += bad
        if seg_files:
            if not _width_ok({w for _, _, w in seg_files}, n):
                out.append(Violation("naming", f"{seq}_GT/SEG: names must use "
                                     f"{name_digits(n)} digits (man_segTTT.tif)",
                                     path=str(folder / "SEG")))
            _check_label_folder(seg_files, n, None, f"{seq}_GT/SEG", every_frame=False,
                                ref_shape=raw_shape, out=out)
    return out


def format_report(violations: list[Violation], path: str | Path = "") -> str:
    """Human-readable summary for the command line."""
    if not violations:
        return f"{path}: valid CTC data (rules 1-10, naming and format)"
    lines = [f"{path}: {len(violations)} problem(s)"]
    lines += [f"  {v}" for v in violations]
    return "\n".join(lines)
