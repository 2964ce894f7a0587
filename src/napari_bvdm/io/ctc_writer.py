"""Write CTC datasets atomically: ``NN/tTTT.tif``, ``NN_GT/TRA``, ``NN_GT/SEG`` (or ``NN_RES``).

Two forms:

- :class:`CTCSequenceWriter`, a context manager that takes frames one at a time
  (``write_frame(t, image, labels)``) so a long synthetic video never has to be held in memory,
  and publishes the sequence on :meth:`~CTCSequenceWriter.close`;
- :func:`export_ctc` / :func:`export_ctc_job` / :func:`export_video` for arrays already in memory
  (or lazy arrays).

Everything is written into a hidden temporary folder and renamed into place only after the
lineage was checked against the labels (CTC rules 1-10), so a failure, a cancel or a closed
generator leaves nothing behind; an existing sequence is replaced only with ``overwrite=True``.
Label images are uint16, names have 3 digits (4 for 1000+ frames, more beyond 10,000), the track file is ``L B E P``
with single spaces, LF endings, sorted by L.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tifffile

from ..runtime.files import usual_folder_permissions
from ..runtime.locks import owner_gone, owner_tag, parse_owner_tag
from ..runtime.progress import CancelToken, Job, Progress, run_job
from .lineage import frame_label_sets, label_spans, write_track_file
from .physical import resolution_tags
from .validator import Violation, check_lineage, name_digits
from .video import InputError, Video

__all__ = ["CTCSequenceWriter", "export_ctc", "export_ctc_job", "export_video", "ExportError",
           "remove_stale_exports", "TEMP_PREFIX", "PUBLISHING"]

#: name start of the hidden folder a sequence is written into (``.bvdm-export-SEQ-HOST-PID-xxxx``); beside a
#: dataset that does not exist yet, the dataset's name comes first (``.NAME.bvdm-export-...``)
TEMP_PREFIX = ".bvdm-export-"
#: a file a dataset publisher puts into a temporary folder while it moves the sequence into place; such a
#: folder is left to that publisher (it finishes the move after a crash), see :func:`remove_stale_exports`
PUBLISHING = ".publishing.json"


class ExportError(InputError):
    """The data cannot be written as a valid CTC sequence (the message lists the violations)."""

    def __init__(self, message: str, violations: list[Violation] | None = None) -> None:
        super().__init__(message)
        self.violations = list(violations or [])


def _temp_owner(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a temporary export folder's name, ``None`` for a name of another form."""
    if TEMP_PREFIX not in name:
        return None
    bits = name.split(TEMP_PREFIX, 1)[1].split("-")
    return parse_owner_tag(f"{bits[1]}-{bits[2]}") if len(bits) >= 4 else None


def remove_stale_exports(out_dir: str | Path, *, keep_publishing: bool = True) -> list[Path]:
    """Remove the temporary folders that ended runs left in (and beside) the dataset ``out_dir``.

    Only folders whose owner process is known to have ended are removed (same machine, no process with
    that id): a live run's folder, or one of another machine, is never touched. With ``keep_publishing``,
    folders holding :data:`PUBLISHING` stay for their dataset publisher to finish under its lock.

    Returns
    -------
    list of Path
        The folders removed.
    """
    out_dir = Path(out_dir)
    found = []
    if out_dir.is_dir():
        found += out_dir.glob(f"{TEMP_PREFIX}*")
    if out_dir.parent.is_dir():
        found += out_dir.parent.glob(f".{out_dir.name}.{TEMP_PREFIX[1:]}*")
    removed = []
    for folder in sorted(found):
        owner = _temp_owner(folder.name)
        if owner is None or not folder.is_dir() or not owner_gone(*owner):
            continue
        if keep_publishing and (folder / PUBLISHING).exists():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


class CTCSequenceWriter:
    """Stream one CTC sequence to disk, frame by frame, and publish it atomically.

    Parameters
    ----------
    out_dir : path
        The dataset folder; the sequence goes to ``out_dir/<seq>`` and ``out_dir/<seq>_GT``
        (``<seq>_RES`` with ``mode="RES"``). It is created if needed.
    seq : str
        Sequence name, two or more digits (``"01"``).
    mode : {"GT", "RES"}
        ``"GT"``: ``<seq>_GT/TRA/man_trackTTT.tif`` + ``man_track.txt`` and
        ``<seq>_GT/SEG/man_segTTT.tif``; ``"RES"``: ``<seq>_RES/maskTTT.tif`` + ``res_track.txt``.
    seg : {"all", "none"} or iterable of int
        GT mode: the frames that get a ``man_seg`` file. A frame's SEG image is the ``seg`` array
        given to :meth:`write_frame`, or its ``labels`` when none is given.
    overwrite : bool
        Replace an existing ``<seq>`` / ``<seq>_GT`` (``<seq>_RES``); otherwise refuse.
    compression : str or None
        TIFF compression (``"zlib"`` at level 1 by default; ``None`` for uncompressed).
    n_frames : int, optional
        Expected number of frames (checked at close; fixes the digit width up front).
    cancel : CancelToken, optional
        Checked in :meth:`write_frame`; when set, the writer aborts and raises ``Cancelled``.
    pixel_size : float, optional
        Micrometres per pixel, stored in every TIFF's resolution tags (pixels per centimetre).

    Examples
    --------
    >>> with CTCSequenceWriter("out/MySet", "01") as w:         # doctest: +SKIP
    ...     for t, (img, lab) in enumerate(frames):
    ...         w.write_frame(t, img, lab)
    ...     w.close(lineage)                                   # validated, then renamed in
    """

    def __init__(
        self,
        out_dir: str | Path,
        seq: str = "01",
        *,
        mode: str = "GT",
        seg: str | Iterable[int] = "all",
        overwrite: bool = False,
        compression: str | None = "zlib",
        n_frames: int | None = None,
        cancel: CancelToken | None = None,
        pixel_size: float | None = None,
    ) -> None:
        seq = str(seq)
        if not (seq.isdigit() and len(seq) >= 2):
            raise InputError(f"sequence name {seq!r} must be two or more digits, e.g. '01'")
        if mode not in ("GT", "RES"):
            raise InputError(f"mode {mode!r} must be 'GT' or 'RES'")
        self.out_dir = Path(out_dir)
        self.seq = seq
        self.mode = mode
        if isinstance(seg, str):
            if seg not in ("all", "none"):
                raise InputError(f"seg={seg!r}: use 'all', 'none' or a list of frame indices")
            self._seg_frames: set[int] | None = None if seg == "all" else set()
        else:
            self._seg_frames = {int(t) for t in seg}
        self.overwrite = overwrite
        self.compression = compression
        self.pixel_size = pixel_size
        self.n_frames_expected = n_frames
        self.cancel = cancel
        # the raw folder <seq>/ is a target only once an image is written (an annotation-only export,
        # e.g. a RES beside existing raw frames, leaves it alone)
        self._targets = [self.out_dir / f"{seq}_{mode}"]
        self._refuse_existing(self._targets[0])
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InputError(f"{self.out_dir} exists and is not a folder")
        self._inside = self.out_dir.is_dir()
        parent = self.out_dir if self._inside else self.out_dir.parent
        prefix = f"{TEMP_PREFIX}{seq}-{owner_tag()}-"
        try:
            if not self._inside:
                parent.mkdir(parents=True, exist_ok=True)
                prefix = f".{self.out_dir.name}.{prefix[1:]}"
            remove_stale_exports(self.out_dir)
            self._tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        except PermissionError:
            raise PermissionError(
                f"cannot write to {parent}: permission denied; choose a folder you can write to"
            ) from None
        self._width = name_digits(n_frames) if n_frames else 3
        self._per_frame: dict[int, np.ndarray] = {}
        self._shape: tuple[int, int] | None = None
        self._image_dtype: np.dtype | None = None
        self._has_image: bool | None = None
        self._seg_written: list[int] = []
        self._done = False
        self.path: Path | None = None
        self._mk(self._raw_dir)
        if mode == "GT":
            self._mk(self._lab_dir)
            self._mk(self._seg_dir)
        else:
            self._mk(self._lab_dir)

    def _refuse_existing(self, target: Path) -> None:
        if target.exists() and not self.overwrite:
            raise FileExistsError(
                f"{target} already exists; choose another folder or sequence, or pass "
                "overwrite=True (--overwrite) to replace it"
            )

    @staticmethod
    def _mk(p: Path) -> None:
        p.mkdir(parents=True, exist_ok=True)

    # --- folders inside the temporary dataset -----------------------------------------------------
    @property
    def _raw_dir(self) -> Path:
        return self._tmp / self.seq

    @property
    def _lab_dir(self) -> Path:
        if self.mode == "GT":
            return self._tmp / f"{self.seq}_GT" / "TRA"
        return self._tmp / f"{self.seq}_RES"

    @property
    def _seg_dir(self) -> Path:
        return self._tmp / f"{self.seq}_GT" / "SEG"

    def _lab_name(self, t: int, w: int) -> str:
        return f"man_track{t:0{w}d}.tif" if self.mode == "GT" else f"mask{t:0{w}d}.tif"

    # --- writing ----------------------------------------------------------------------------------
    def _write(self, path: Path, arr: np.ndarray) -> None:
        kw = {}
        if self.compression:
            kw = {"compression": self.compression}
            if self.compression == "zlib":
                kw["compressionargs"] = {"level": 1}
        tifffile.imwrite(path, arr, **kw, **resolution_tags(self.pixel_size))

    @staticmethod
    def _as_labels(arr, what: str, t: int) -> np.ndarray:
        a = np.asarray(arr)
        if a.ndim != 2:
            raise InputError(f"{what} of frame {t} has shape {a.shape}; expected a 2D (Y, X) image")
        if a.dtype.kind == "f":
            if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                raise InputError(f"{what} of frame {t} holds non-integer floats; labels must be "
                                 "whole numbers 0..65535")
        elif a.dtype.kind not in "iub":
            raise InputError(f"{what} of frame {t} has type {a.dtype}; expected integer labels")
        if a.size:
            lo, hi = a.min(), a.max()
            if lo < 0:
                raise InputError(f"{what} of frame {t} has negative labels (min {lo}); labels must "
                                 "be >= 0 with 0 as background")
            if hi > 65535:
                raise InputError(f"{what} of frame {t} has label {hi}; CTC labels are uint16 "
                                 "(at most 65535)")
        return a.astype(np.uint16, copy=False)

    def write_frame(self, t: int, image, labels, seg=None) -> None:
        """Write frame ``t``: the raw image (or None), its track-id labels and optional SEG masks.

        Raises
        ------
        InputError
            Shapes that differ from earlier frames or from each other, float/negative labels.
        """
        if self._done:
            raise RuntimeError("the writer is closed")
        if self.cancel is not None and self.cancel.cancelled:
            self.abort()
            self.cancel.check()
        t = int(t)
        if t < 0:
            raise InputError(f"frame index {t} is negative")
        if t in self._per_frame:
            raise InputError(f"frame {t} was already written")
        try:
            lab = self._as_labels(labels, "labels", t)
            shape = lab.shape
            if self._shape is None:
                self._shape = shape
            elif shape != self._shape:
                raise InputError(f"labels of frame {t} are {shape}, earlier frames {self._shape}; "
                                 "every frame must have the same size")
            if self._has_image is not None and (image is not None) != self._has_image:
                raise InputError(f"frame {t}: give an image for every frame or for none")
            if self._has_image is None and image is not None:
                self._refuse_existing(self.out_dir / self.seq)
                self._targets.insert(0, self.out_dir / self.seq)
            self._has_image = image is not None
            if image is not None:
                img = np.asarray(image)
                if img.shape != shape:
                    raise InputError(f"frame {t}: image {img.shape} and labels {shape} differ in "
                                     "shape; they must match pixel for pixel")
                if img.dtype.kind == "b":
                    img = img.astype(np.uint8)
                elif img.dtype == np.float64:
                    img = img.astype(np.float32)
                elif img.dtype.kind not in "uif":
                    raise InputError(f"frame {t}: image type {img.dtype} is not a grey image type")
                if self._image_dtype is None:
                    self._image_dtype = img.dtype
                elif img.dtype != self._image_dtype:
                    raise InputError(f"frame {t}: image dtype {img.dtype} differs from earlier "
                                     f"frames ({self._image_dtype})")
                self._write(self._raw_dir / f"t{t:0{self._width}d}.tif", img)
            self._write(self._lab_dir / self._lab_name(t, self._width), lab)
            self._per_frame[t] = frame_label_sets([lab])[0]
            if self.mode == "GT" and (self._seg_frames is None or t in self._seg_frames
                                      or seg is not None):
                s = lab if seg is None else self._as_labels(seg, "SEG masks", t)
                if s.shape != shape:
                    raise InputError(f"frame {t}: SEG masks {s.shape} and labels {shape} differ")
                self._write(self._seg_dir / f"man_seg{t:0{self._width}d}.tif", s)
                self._seg_written.append(t)
        except BaseException:
            self.abort()
            raise

    # --- finishing --------------------------------------------------------------------------------
    def lineage_from_written(self) -> np.ndarray:
        """``L B E P`` (P = 0) from the labels written so far; InputError if a track has gaps."""
        n = len(self._per_frame)
        per = [self._per_frame.get(t, np.zeros(0, np.int64)) for t in range(n)]
        rows = []
        for lab, frames in sorted(label_spans(per).items()):
            if frames[-1] - frames[0] + 1 != len(frames):
                gap = next(a + 1 for a, b in zip(frames, frames[1:], strict=False) if b != a + 1)
                raise ExportError(
                    f"label {lab} disappears at frame {gap} and comes back later; give a lineage "
                    "or relabel with napari_bvdm.io.lineage.lineage_from_labels first (it splits "
                    "tracks at gaps)")
            rows.append([lab, frames[0], frames[-1], 0])
        return np.asarray(rows, np.int64).reshape(-1, 4)

    def close(self, lineage: np.ndarray | None = None) -> Path:
        """Check, write the track file and publish the sequence; returns ``out_dir``.

        Parameters
        ----------
        lineage : (N, 4) int array ``L B E P``, optional
            Default: one track per label from its first to its last frame, no parents.

        Raises
        ------
        ExportError
            The frames are not 0..T-1, or the lineage and labels break a CTC rule (the message
            lists which); nothing is published and the temporary folder is removed.
        """
        if self._done:
            if self.path is None:
                raise RuntimeError("the writer was aborted")
            return self.path
        try:
            self.finish(lineage)
            self._publish()
        except BaseException:
            self.abort()
            raise
        self._done = True
        self.path = self.out_dir
        return self.out_dir

    def finish(self, lineage: np.ndarray | None = None) -> Path:
        """Check and complete the sequence in its temporary folder, without publishing it.

        For a caller that publishes the sequence itself (e.g. together with a dataset record): it moves
        :attr:`parts` from the returned folder into ``out_dir`` and then calls :meth:`abort` to remove the
        rest. Raises as :meth:`close`; on an error the temporary folder is removed.
        """
        if self._done:
            raise RuntimeError("the writer is closed")
        try:
            n = len(self._per_frame)
            if n == 0:
                raise ExportError("no frames were written")
            if sorted(self._per_frame) != list(range(n)):
                missing = sorted(set(range(max(self._per_frame) + 1)) - set(self._per_frame))
                raise ExportError(f"frames {missing[:5]} were never written; frames must be "
                                  "0..T-1 without gaps")
            if self.n_frames_expected is not None and n != self.n_frames_expected:
                raise ExportError(f"{n} frames written, {self.n_frames_expected} announced")
            lin = self.lineage_from_written() if lineage is None else np.asarray(
                lineage, np.int64).reshape(-1, 4)
            per = [self._per_frame[t] for t in range(n)]
            problems = check_lineage(lin, per, n)
            if problems:
                shown = "; ".join(str(v) for v in problems[:6])
                more = f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""
                raise ExportError(f"not a valid CTC sequence: {shown}{more}", problems)
            name = "man_track.txt" if self.mode == "GT" else "res_track.txt"
            write_track_file(self._lab_dir / name, lin)
            self._fix_width(n)
            if not self._has_image:
                shutil.rmtree(self._raw_dir)
            if self.mode == "GT" and not self._seg_written:
                shutil.rmtree(self._seg_dir)
        except BaseException:
            self.abort()
            raise
        return self._tmp

    @property
    def staging(self) -> Path:
        """The hidden temporary folder the sequence is written into."""
        return self._tmp

    @property
    def parts(self) -> list[str]:
        """Names of the folders this sequence publishes (``NN`` and ``NN_GT``, or ``NN_RES``)."""
        return [p.name for p in (self._raw_dir, self._tmp / f"{self.seq}_{self.mode}") if p.exists()]

    def _fix_width(self, n: int) -> None:
        w = name_digits(n)
        if w == self._width:
            return
        for folder, prefix in ((self._raw_dir, "t"), (self._lab_dir, self._lab_name(0, 1)[:-5]),
                               (self._seg_dir, "man_seg")):
            if not folder.is_dir():
                continue
            for p in folder.glob(f"{prefix}*.tif"):
                t = int(p.stem[len(prefix):])
                p.rename(p.with_name(f"{prefix}{t:0{w}d}.tif"))
        self._width = w

    def _publish(self) -> None:
        if not self._inside and not self.out_dir.exists():
            usual_folder_permissions(self._tmp)  # a new dataset folder, as mkdir would make it
            try:
                os.rename(self._tmp, self.out_dir)
                return
            except OSError as e:  # another process made the dataset folder meanwhile: add to it
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        for target in self._targets:
            self._refuse_existing(target)
        produced = [p for p in (self._raw_dir, self._tmp / f"{self.seq}_{self.mode}") if p.exists()]
        old = self._tmp / ".replaced"
        if self.overwrite:
            for target in self._targets:
                if target.exists():
                    old.mkdir(exist_ok=True)
                    os.replace(target, old / target.name)
        for src in produced:
            os.replace(src, self.out_dir / src.name)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def abort(self) -> None:
        """Remove everything written so far (idempotent)."""
        if not self._done:
            self._done = True
            shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def n_written(self) -> int:
        return len(self._per_frame)

    def __enter__(self) -> CTCSequenceWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.close()

    def __del__(self) -> None:  # a writer dropped without close() leaves nothing behind
        try:
            if not self._done:
                self.abort()
        except Exception:  # noqa: BLE001
            pass


def export_ctc_job(
    out_dir: str | Path,
    image,
    labels,
    lineage: np.ndarray | None = None,
    *,
    seq: str = "01",
    seg: str | Iterable[int] | np.ndarray = "all",
    seg_frames: Iterable[int] | None = None,
    mode: str = "GT",
    overwrite: bool = False,
    compression: str | None = "zlib",
    cancel: CancelToken | None = None,
) -> Job[Path]:
    """Generator form of :func:`export_ctc`: yields one :class:`Progress` per frame.

    Closing the generator or setting ``cancel`` removes the partial export.
    """
    labels_arr = labels
    n = len(labels_arr)
    if image is not None and tuple(image.shape) != tuple(labels_arr.shape):
        raise InputError(f"image video {tuple(image.shape)} and label video "
                         f"{tuple(labels_arr.shape)} differ in shape; they must match")
    if getattr(labels_arr, "ndim", 3) != 3:
        raise InputError(f"labels have shape {tuple(labels_arr.shape)}; expected (T, Y, X)")
    seg_arr = None
    if isinstance(seg, str):
        seg_policy: str | Iterable[int] = seg
    elif hasattr(seg, "shape") and getattr(seg, "ndim", 0) == 3:
        seg_arr = seg
        if tuple(seg_arr.shape) != tuple(labels_arr.shape):
            raise InputError(f"SEG video {tuple(seg_arr.shape)} and label video "
                             f"{tuple(labels_arr.shape)} differ in shape")
        seg_policy = list(range(n)) if seg_frames is None else [int(t) for t in seg_frames]
    else:
        seg_policy = [int(t) for t in seg]
    seg_set = None if seg_policy == "all" else (set() if seg_policy == "none" else set(seg_policy))
    writer = CTCSequenceWriter(out_dir, seq, mode=mode, seg=seg_policy if seg_arr is None else "none",
                               overwrite=overwrite, compression=compression, n_frames=n,
                               cancel=cancel)
    try:
        for t in range(n):
            s = None
            if seg_arr is not None and (seg_set is None or t in seg_set):
                s = seg_arr[t]
            writer.write_frame(t, None if image is None else image[t], labels_arr[t], seg=s)
            yield Progress(t + 1, n + 1, f"frame {t + 1}/{n}", stage="export")
        path = writer.close(lineage)
        yield Progress(n + 1, n + 1, f"exported {n} frames to {path}", stage="export")
        return path
    finally:
        writer.abort()  # no-op after a successful close


def export_ctc(
    out_dir: str | Path,
    image,
    labels,
    lineage: np.ndarray | None = None,
    *,
    seq: str = "01",
    seg: str | Iterable[int] | np.ndarray = "all",
    seg_frames: Iterable[int] | None = None,
    mode: str = "GT",
    overwrite: bool = False,
    compression: str | None = "zlib",
) -> Path:
    """Write an image video, its track-id label video and lineage as a CTC sequence.

    Parameters
    ----------
    out_dir : path
        Dataset folder (created); writes ``<seq>/``, ``<seq>_GT/`` (or ``<seq>_RES/``).
    image : array-like (T, Y, X) or None
        Raw frames (dtype kept; None writes annotations only).
    labels : array-like (T, Y, X) of integers
        Track ids (the TRA / RES images); written as uint16.
    lineage : (N, 4) int array, optional
        ``L B E P``; default one parent-less track per label (InputError if a label has gaps:
        use :func:`~napari_bvdm.io.lineage.lineage_from_labels`).
    seq : str
        Sequence name.
    seg : "all", "none", list of frames, or an array (T, Y, X)
        Which frames get ``man_seg`` (copies of ``labels``), or separate SEG masks; with an array,
        ``seg_frames`` picks the annotated frames (default all).
    mode : {"GT", "RES"}
        Ground-truth layout or a result (``maskTTT.tif`` + ``res_track.txt``).
    overwrite : bool
        Replace an existing sequence instead of refusing.
    compression : str or None
        TIFF compression, ``"zlib"`` (level 1) by default.

    Returns
    -------
    Path
        ``out_dir``.
    """
    return run_job(export_ctc_job(out_dir, image, labels, lineage, seq=seq, seg=seg,
                                  seg_frames=seg_frames, mode=mode, overwrite=overwrite,
                                  compression=compression))


def export_video(out_dir: str | Path, video: Video, *, seq: str | None = None,
                 overwrite: bool = False, compression: str | None = "zlib",
                 cancel: CancelToken | None = None) -> Job[Path]:
    """Job that exports a :class:`Video` as CTC GT: image, main labels + lineage, SEG at its frames.

    The track labels are ``labels["TRA"]`` (else ``"labels"``, ``"RES"``, ``"ST"``...). SEG is
    ``labels["SEG"]`` at ``seg_frames`` when present, else a copy of the track labels in every frame.
    """
    main = video.main_labels()
    if main is None:
        raise InputError("the video has no label video to export; CTC needs track labels")
    kind, labels = main
    lineage = video.lineage if kind in ("TRA", "labels") else None
    if "SEG" in video.labels and kind != "SEG":
        seg, seg_frames = video.labels["SEG"], list(video.seg_frames)
    else:
        seg, seg_frames = "all", None
    seq = seq or str(video.meta.get("sequence", "01"))
    return (yield from export_ctc_job(out_dir, video.image, labels, lineage, seq=seq, seg=seg,
                                      seg_frames=seg_frames, overwrite=overwrite,
                                      compression=compression, cancel=cancel))
