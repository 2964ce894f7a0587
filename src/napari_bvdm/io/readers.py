"""Read videos: multi-page TIFF, single 2D TIFF, folder of per-frame TIFFs, CTC sequences.

Entry point: :func:`read_video`. Every reader returns a :class:`~napari_bvdm.io.video.Video` whose
arrays are ``(T, Y, X)`` and keep the file's dtype. With ``lazy=True`` the arrays are
:class:`~napari_bvdm.io.lazy.FrameStack` objects (or memory maps for uncompressed TIFFs) that decode
a frame when it is indexed; with ``lazy=False`` (default) they are numpy arrays filled in place
(one copy in memory).

Bad input raises :class:`~napari_bvdm.io.video.InputError` saying what is wrong and what to do.
Every TIFF's header is checked before any pixels are read (:func:`read_tiff_header`): empty files,
files that are no TIFF, truncated or damaged files, headers that declare more pixels or pages than the
file holds; nothing is read into memory that does not fit (:func:`~napari_bvdm.io.lazy.check_memory`);
label values must lie in 0..4294967295 (:data:`LABEL_MAX`), checked as each frame is decoded.
"""

from __future__ import annotations

import logging
import math
import re
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from .lazy import FrameStack, check_memory, format_bytes
from .lineage import frame_label_sets, read_track_file
from .physical import read_physical
from .video import InputError, Video

__all__ = [
    "read_video",
    "read_tiff",
    "read_frame_folder",
    "read_ctc",
    "find_ctc",
    "CTCLayout",
    "frame_number",
    "read_tiff_header",
    "decode_tiff",
    "label_video",
    "check_track_text",
    "TiffHeader",
    "FileProblem",
    "TIFF_SUFFIXES",
    "LABEL_MAX",
]

TIFF_SUFFIXES = (".tif", ".tiff")
_SEQ_DIR = re.compile(r"^\d{2,}$")
_ANNOT_DIR = re.compile(r"^(\d{2,})_(GT|ST|ERR_SEG|RES)$")
_DIGITS = re.compile(r"\d+")
LABEL_MAX = int(np.iinfo(np.uint32).max)  # the largest label napari-bvdm reads (CTC itself uses uint16)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_DEFLATE = (8, 32946)  # ADOBE_DEFLATE, DEFLATE
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than this (RFC 1951: 258 bytes per 2 bits)
_AGAIN = "copy the file again from its source, or save it again"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def frame_number(path: str | Path) -> int | None:
    """The last number in a file name's stem (``t012.tif`` -> 12, ``man_seg007`` -> 7)."""
    nums = _DIGITS.findall(Path(path).stem)
    return int(nums[-1]) if nums else None


def _is_tiff(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in TIFF_SUFFIXES and not p.name.startswith(".")


def _tiffs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if _is_tiff(p)]


def _exists(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path} does not exist; give a TIFF file, a folder of TIFF frames or a "
                         "CTC sequence folder")


class FileProblem(InputError):
    """An :class:`InputError` about one file; ``str()`` is ``"<path> <problem>"``.

    Attributes
    ----------
    path : Path
        The file.
    problem : str
        The message without the path (the validator puts its own short name in front).
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path = Path(path)
        self.problem = problem

    def __reduce__(self) -> tuple:
        return type(self), (self.path, self.problem)


@dataclass(frozen=True)
class TiffHeader:
    """What a TIFF's header declares about its first series, checked against the file.

    Attributes
    ----------
    shape : tuple of int
        Shape of the first series (as tifffile reports it, singleton axes kept).
    dtype : numpy dtype
        Pixel type.
    axes : str
        tifffile's axes string, e.g. ``"TYX"``.
    n_pages : int
        Pages (IFDs) in the file.
    nbytes : int
        Bytes the decoded series takes in memory.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str
    n_pages: int
    nbytes: int


class _TiffErrors(logging.Filter):
    """Collects the errors tifffile logs in this thread (and keeps them off the terminal)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread or record.levelno < logging.ERROR:
            return True
        self.messages.append(re.sub(r"^(<[^>]*>\s*)+", "", record.getMessage()))
        return False


@contextmanager
def _tifffile_errors() -> Iterator[list[str]]:
    """The error messages tifffile logs while the block runs: each one means a damaged file."""
    log = logging.getLogger("tifffile")
    errors = _TiffErrors()
    log.addFilter(errors)
    try:
        yield errors.messages
    finally:
        log.removeFilter(errors)


def _check_file_start(path: Path) -> int:
    """The file's size; :class:`FileProblem` for an empty file or one that does not start like a TIFF."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise FileProblem(path, f"cannot be read ({e.strerror or e})") from None
    if size == 0:
        raise FileProblem(path, f"is empty (0 bytes): {_AGAIN}")
    if head[:4] not in _TIFF_MAGIC:
        if len(head) < 4 and any(m.startswith(head) for m in _TIFF_MAGIC):
            raise FileProblem(path, f"is truncated or damaged: it has only {size} bytes, less than a TIFF header; "
                                    + _AGAIN)
        line = head.split(b"\n", 1)[0].decode("ascii", "replace")
        text = bool(line) and line.isprintable() and "\ufffd" not in line
        looks = f"it starts with the text {line[:30]!r}" if text else f"it starts with the bytes {head[:8]!r}"
        raise FileProblem(path, f"is not a TIFF file ({looks}); give a .tif/.tiff image (it may be another "
                                "file renamed to .tif)")
    return size


def read_tiff_header(path: str | Path) -> TiffHeader:
    """Read and check a TIFF's header without decoding pixels.

    Every page (IFD) is read. The file is refused when it is empty or no TIFF; when its page list
    or pixel data reach past the end of the file (truncated); when its metadata (ImageJ ``images``,
    tifffile's shape) declares more pages than it holds; or when a page declares more pixels than
    its data can hold (uncompressed data smaller than the image, zlib data more than 1032 times
    smaller).

    Raises
    ------
    FileProblem
        Naming the file, what is wrong, and the numbers.
    """
    path = Path(path)
    size = _check_file_start(path)
    with _tifffile_errors() as errors:
        try:
            with tifffile.TiffFile(path) as tif:
                cut, wrong = _page_problems(tif, size)
                if cut:
                    raise FileProblem(path, f"is truncated or damaged: {cut}; {_AGAIN}")
                if wrong:
                    raise FileProblem(path, f"is damaged: {wrong}, so its header is wrong (or the file was cut "
                                            f"short); {_AGAIN}")
                s = tif.series[0]
                header = TiffHeader(tuple(int(n) for n in s.shape), np.dtype(s.dtype), str(s.axes), len(tif.pages),
                                    int(math.prod(s.shape)) * np.dtype(s.dtype).itemsize)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure to parse the header (struct.error, ...) is damage
            raise FileProblem(path, f"is truncated or damaged: its TIFF structure cannot be read "
                                    f"({type(e).__name__}: {e}); {_AGAIN}") from None
    if errors:
        raise FileProblem(path, f"is truncated or damaged: tifffile reports: {errors[0]}; {_AGAIN}")
    return header


def _page_problems(tif: tifffile.TiffFile, size: int) -> tuple[str | None, str | None]:
    """Why the file is cut short (its page list or pixel data do not fit in it), and the first page whose
    header declares more pixels than its data hold; None for each that is fine."""
    pages = tif.pages
    n = len(pages)
    if n == 0:
        return "it holds no image (no pages)", None
    broken = _chain_problem(tif, size)
    if broken:
        return f"its list of pages breaks off after {n} page(s) ({broken})", None
    wrong = None
    for i, page in enumerate(pages):
        cut = _data_cut_short(page, i, size)
        if cut:
            return cut, None
        wrong = wrong or _declares_too_much(page, i)
    declared = _declared_pages(tif)
    if declared is not None and declared[0] > n and not _contiguous_fits(tif, declared[0], size):
        return f"its {declared[1]} declares {declared[0]} images but it holds {n} page(s) ({size} bytes)", None
    return None, wrong


def _data_cut_short(page: tifffile.TiffPage, i: int, size: int) -> str | None:
    """Why page ``i``'s pixel data are missing or reach past the end of the file, or None."""
    offsets, counts = page.dataoffsets, page.databytecounts
    if not offsets or len(offsets) != len(counts):
        return f"page {i} has no pixel data offsets"
    end = max((o + c for o, c in zip(offsets, counts, strict=True) if c), default=0)
    if end > size:
        return f"page {i}'s pixel data ends at byte {end} but the file has only {size} bytes"
    return None


def _declares_too_much(page: tifffile.TiffPage, i: int) -> str | None:
    """Why page ``i`` cannot hold the pixels its header declares (uncompressed data smaller than the
    image, zlib data more than 1032 times smaller), or None."""
    data = int(sum(page.databytecounts))
    need = int(page.nbytes)
    dims = " x ".join(str(n) for n in page.shape)
    declared = f"page {i} declares {dims} pixels of {page.dtype} ({format_bytes(need)})"
    if page.compression == 1 and page.bitspersample % 8 == 0 and data < need:
        return f"{declared} but holds only {format_bytes(data)} of pixel data"
    if page.compression in _DEFLATE and need > _DEFLATE_MAX_RATIO * data + 65536:
        return (f"{declared} but holds only {format_bytes(data)} of zlib data, which decompress to at most "
                f"{format_bytes(_DEFLATE_MAX_RATIO * data)}")
    return None


def _chain_problem(tif: tifffile.TiffFile, size: int) -> str | None:
    """Why the last page's link to a next page is not the end mark 0, or None."""
    fh = tif.filehandle
    pos = tif.pages.next_page_offset
    if pos is None:
        return None
    fh.seek(pos)
    raw = fh.read(tif.tiff.offsetsize)
    if len(raw) < tif.tiff.offsetsize:
        return f"the file ends at byte {size} inside the last page's header"
    nxt = struct.unpack(tif.tiff.offsetformat, raw)[0]
    if nxt == 0:
        return None
    return f"the next page should start at byte {nxt} but the file has only {size} bytes" if nxt >= size else (
        f"the next page at byte {nxt} cannot be read")


def _declared_pages(tif: tifffile.TiffFile) -> tuple[int, str] | None:
    """Pages the metadata declares, and which metadata: ImageJ ``images`` or tifffile's ``shape``."""
    ij = tif.imagej_metadata
    if ij and isinstance(ij.get("images"), int) and ij["images"] > 0:
        return ij["images"], "ImageJ metadata"
    shaped = tif.shaped_metadata
    if shaped and len(shaped) == 1 and "shape" in shaped[0]:
        page_px = math.prod(tif.pages.first.shape) or 1
        return math.prod(int(n) for n in shaped[0]["shape"]) // page_px, "tifffile metadata"
    return None


def _contiguous_fits(tif: tifffile.TiffFile, images: int, size: int) -> bool:
    """Whether ``images`` uncompressed pages stored one after the other fit in the file (big ImageJ files
    keep one page header for all images)."""
    first = tif.pages.first
    if first.compression != 1 or not first.is_contiguous:
        return False
    return first.dataoffsets[0] + images * first.nbytes <= size


def decode_tiff(path: str | Path, read: Callable[[], np.ndarray], what: str = "") -> np.ndarray:
    """Run ``read`` (a tifffile decode of ``path``) and turn any failure into a :class:`FileProblem`.

    ``what`` (e.g. ``"page 3"``) says which part was being decoded.
    """
    where = f"{what}: " if what else ""
    with _tifffile_errors() as errors:
        try:
            arr = read()
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - every decoder failure is bad input here
            text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if "imagecodecs" in text:
                raise FileProblem(path, f"cannot be decoded: {where}{text}; install imagecodecs, or save the file "
                                        "uncompressed or zlib-compressed") from None
            raise FileProblem(path, f"is truncated or damaged: {where}the pixel data cannot be decoded ({text}); "
                                    + _AGAIN) from None
    if errors:
        raise FileProblem(path, f"is truncated or damaged: {where}tifffile reports: {errors[0]}; {_AGAIN}")
    return arr


def _page_info(path: Path) -> tuple[tuple[int, ...], np.dtype, str]:
    """Shape, dtype and axes of a TIFF's first series (header only, checked: :func:`read_tiff_header`)."""
    h = read_tiff_header(path)
    return h.shape, h.dtype, h.axes


def _check_grey_axes(path: Path, shape: tuple[int, ...], axes: str, *, frame: bool) -> tuple[int, ...]:
    """Reject RGB / multichannel / 4D data with a message that says which axis to pick.

    Returns the shape with singleton non-spatial axes removed: ``(Y, X)`` or ``(T, Y, X)``.
    """
    axes = axes.upper()
    for ax_name, what in (("S", "colour samples (RGB/RGBA)"), ("C", "channels")):
        if ax_name in axes:
            i = axes.index(ax_name)
            if shape[i] > 1:
                hint = ""
                if ax_name == "S" and i == 0:
                    hint = (f"; if these are {shape[i]} grey frames that were stored as colour planes, "
                            "save them again with tifffile.imwrite(path, data, photometric='minisblack')")
                raise InputError(
                    f"{path} has {shape[i]} {what} on axis {i} (shape {shape}, axes {axes!r}); "
                    f"napari-bvdm needs one grey channel: pick one, e.g. "
                    f"`numpy.take(tifffile.imread(path), c, axis={i})`, and save that as the video{hint}"
                )
    keep = [(n, a) for n, a in zip(shape, axes, strict=True) if not (n == 1 and a not in "YX")]
    dims = tuple(n for n, _ in keep)
    max_dims = 2 if frame else 3
    if len(dims) > max_dims:
        raise InputError(
            f"{path} is {len(dims)}D (shape {shape}, axes {axes!r}); "
            + ("each frame file must be one 2D image" if frame else
               "napari-bvdm reads 2D videos (T, Y, X): pick one z-slice or time point on the extra "
               "axis (or project it) and save a (T, Y, X) stack")
        )
    if dims and (len(dims) < 2):
        raise InputError(f"{path} has shape {shape}; expected a 2D image or a (T, Y, X) stack")
    return dims


def _check_dtype(path: Path | str, dtype: np.dtype) -> None:
    if dtype.kind not in "uifb":
        raise InputError(f"{path} has pixel type {dtype}; expected an integer or float grey image")


def _check_label_dtype(where: str, dtype: np.dtype) -> None:
    if dtype.kind == "f":
        raise InputError(
            f"{where}: labels are floats ({dtype}); label images must hold non-negative integers "
            "(uint16 in CTC); convert with `labels.astype(numpy.uint16)` if the values are whole"
        )
    if dtype.kind not in "iub":
        raise InputError(f"{where}: labels have pixel type {dtype}; expected unsigned integers")


def _check_label_values(where: str, arr: np.ndarray) -> None:
    """Refuse negative labels (they would be read as background and lost) and labels above uint32."""
    if arr.dtype.kind not in "iu" or not arr.size:
        return
    if arr.dtype.kind == "i":
        low = int(arr.min())
        if low < 0:
            raise InputError(f"{where}: labels contain negative values (min {low}); labels must be >= 0 with 0 as "
                             "background, so negative objects would be lost: save the labels as unsigned integers "
                             "(uint16)")
    if arr.dtype.itemsize > 4:
        high = int(arr.max())
        if high > LABEL_MAX:
            raise InputError(f"{where}: label value {high} is larger than {LABEL_MAX}, the largest label "
                             "napari-bvdm reads (uint32; CTC uses uint16): renumber the labels (e.g. "
                             "skimage.segmentation.relabel_sequential) and save them as uint16")


def _label_check(name: Callable[[int], str]) -> Callable[[int, np.ndarray], None]:
    """A :class:`FrameStack` ``check`` that runs :func:`_check_label_values` on frame ``t``, named by ``name(t)``."""

    def check(t: int, frame: np.ndarray) -> None:
        _check_label_values(name(t), frame)

    return check


def label_video(video: Video) -> Video:
    """``video``'s integer image (a label TIFF or frame folder) as the label video ``labels["labels"]``.

    The labels' values are checked (:func:`_check_label_values`) frame by frame as they are read: at
    once for in-memory arrays, on access for lazy ones.

    Raises
    ------
    InputError
        The image is not of an integer type, or holds negative or too large labels.
    """
    image = video.image
    where = video.source or "the video"
    if image is None:
        raise InputError(f"{where} holds no image to use as labels")
    dtype = np.dtype(image.dtype)
    if dtype.kind not in "uib":
        top = np.asarray(image[0]).max() if len(image) else 0
        raise InputError(f"{where} is a {dtype.name} image (frame 0 up to {top:g}), not a label video: labels are "
                         "whole numbers, 0 = background; give a label TIFF of uint16 (or a CTC folder), e.g. "
                         "`labels.astype(numpy.uint16)` when the values are whole and at most 65535")
    files = video.meta.get("files")
    check = _label_check((lambda t: f"{where}/{files[t]}") if files else (lambda t: f"{where} (frame {t})"))
    if isinstance(image, FrameStack):
        labels = FrameStack(image.frame, len(image), image.shape[1:], image.dtype, present=image.present,
                            name=image.name or where, check=check)
    else:
        for t in range(len(image)):
            check(t, np.asarray(image[t]))
        labels = image
    return Video(labels={"labels": labels}, source=video.source)


def check_track_text(text: str, source: str) -> None:
    """Refuse a track file whose numbers do not fit in uint32 (the labels napari-bvdm reads).

    Raises
    ------
    InputError
        Naming the file, the line and the number.
    """
    for i, line in enumerate(text.splitlines(), 1):
        for tok in re.findall(r"\d+", line):
            tok = tok.lstrip("0") or "0"
            if len(tok) > 10 or int(tok) > LABEL_MAX:
                shown = tok if len(tok) <= 30 else f"{tok[:12]}...({len(tok)} digits)"
                raise InputError(f"{source}, line {i}: the number {shown} is larger than {LABEL_MAX}; CTC labels "
                                 "(and frame numbers) must fit in uint16 (napari-bvdm reads up to uint32): "
                                 "renumber the tracks")


def _read_tracks(path: Path) -> np.ndarray:
    """:func:`~napari_bvdm.io.lineage.read_track_file` after :func:`check_track_text`."""
    try:
        check_track_text(path.read_text(), str(path))
    except (OSError, UnicodeDecodeError):
        pass  # read_track_file says that the file is missing or not text
    return read_track_file(path)


# --------------------------------------------------------------------------------------------
# single TIFF (multi-page or 2D)
# --------------------------------------------------------------------------------------------
def read_tiff(path: str | Path, *, lazy: bool = False) -> Video:
    """Read a multi-page TIFF ``(T, Y, X)`` or a single 2D TIFF (a 1-frame video).

    Parameters
    ----------
    path : path
        The TIFF file.
    lazy : bool
        Memory-map uncompressed files, decode compressed pages on access; else read into memory.

    Raises
    ------
    InputError
        Not a TIFF, truncated or damaged, a header that declares more pixels than the file holds or
        than fit in memory (:func:`~napari_bvdm.io.lazy.check_memory`), RGB/multichannel, more than 3
        dimensions, unsupported pixel type.
    """
    path = Path(path)
    _exists(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise InputError(f"{path} is not a TIFF file (.tif/.tiff)")
    header = read_tiff_header(path)
    dtype = header.dtype
    _check_dtype(path, dtype)
    dims = _check_grey_axes(path, header.shape, header.axes, frame=False)
    if len(dims) == 2:
        dims = (1,) + dims
    meta = {"format": "tiff", "axes": header.axes, "dtype": dtype.name, **read_physical(path)}
    desc = f"{path} ({dims[0]} frame(s) of {dims[1]} x {dims[2]} {dtype.name})"
    image = None
    if lazy:
        check_memory(dims[1] * dims[2] * dtype.itemsize, f"reading one frame of {desc}")
        image = _lazy_multipage(path, dims, dtype)
    if image is None:
        check_memory(header.nbytes, f"reading {desc}", "read it lazily (lazy=True; napari does), or use a "
                     "smaller video")
        image = decode_tiff(path, lambda: tifffile.imread(path, series=0))
        image = np.asarray(image).reshape(dims)
    return Video(image=image, source=str(path), meta=meta)


def _lazy_multipage(path: Path, dims: tuple[int, int, int], dtype: np.dtype):
    """A memory map (uncompressed, contiguous) or a FrameStack over pages; None if neither fits."""
    with _tifffile_errors():
        try:
            mm = tifffile.memmap(path, mode="r")
            return mm.reshape(dims)
        except Exception:  # noqa: BLE001 - not memory-mappable: compressed or not contiguous
            pass
    tif = tifffile.TiffFile(path)
    pages = tif.series[0].pages
    if len(pages) != dims[0]:
        tif.close()
        return None
    lock = threading.Lock()

    def load(t: int) -> np.ndarray:
        with lock:
            return decode_tiff(path, pages[t].asarray, f"page {t}").reshape(dims[1:])

    stack = FrameStack(load, dims[0], dims[1:], dtype, name=str(path))
    stack._tiff = tif  # keep the handle open as long as the stack lives
    return stack


# --------------------------------------------------------------------------------------------
# folder of per-frame TIFFs
# --------------------------------------------------------------------------------------------
def _numbered(files: list[Path], folder: Path) -> list[tuple[int, Path]]:
    nums = [(frame_number(p), p) for p in files]
    missing = [p.name for n, p in nums if n is None]
    if missing:
        if len(missing) == len(nums):
            return [(i, p) for i, p in enumerate(sorted(files, key=lambda p: p.name))]
        raise InputError(f"{folder}: files {missing[:3]} have no frame number in their name while "
                         "others do; name every frame file with its index (t000.tif, t001.tif, ...)")
    nums.sort(key=lambda np_: np_[0])
    seen: dict[int, Path] = {}
    for n, p in nums:
        if n in seen:
            raise InputError(f"{folder}: {seen[n].name} and {p.name} both have frame number {n}")
        seen[n] = p
    return nums  # type: ignore[return-value]


def _stack_of_files(
    files: list[Path], n_frames: int, index: list[int], *, lazy: bool, what: str,
    label: bool = False,
):
    """A (T, Y, X) array from per-frame files placed at ``index`` (other frames zero).

    Every file's header is checked (:func:`read_tiff_header`); label frames are checked for negative
    and too large values as they are decoded.
    """
    infos = [_page_info(p) for p in files]
    shapes = {}
    for p, (shape, dtype, axes) in zip(files, infos, strict=True):
        if label:
            _check_label_dtype(f"{what}/{p.name}", dtype)
        dims = _check_grey_axes(p, shape, axes, frame=True)
        shapes.setdefault((dims, dtype.str), []).append(p.name)
    if len(shapes) > 1:
        parts = "; ".join(f"{len(v)} file(s) {k[0]} {np.dtype(k[1]).name} (e.g. {v[0]})"
                          for k, v in shapes.items())
        raise InputError(f"{what}: frames differ in size or pixel type: {parts}; every frame must "
                         "have the same size and type")
    (dims, dstr), = shapes.keys()
    dtype = np.dtype(dstr)
    if label:
        _check_label_dtype(what, dtype)
    else:
        _check_dtype(what, dtype)
    by_t = dict(zip(index, files, strict=True))
    if n_frames <= max(index, default=-1):
        raise InputError(f"{what}: frame index {max(index)} is beyond the video's {n_frames} frames")
    check = _label_check(lambda t: f"{what}/{by_t[t].name}") if label else None

    def load(t: int) -> np.ndarray:
        return decode_tiff(by_t[t], lambda: tifffile.imread(by_t[t])).reshape(dims)

    if lazy:
        return FrameStack(load, n_frames, dims, dtype, present=index, name=what, check=check)
    check_memory(n_frames * math.prod(dims) * dtype.itemsize,
                 f"reading {what} ({n_frames} frames of {dims[0]} x {dims[1]} {dtype.name})",
                 "read it lazily (lazy=True; napari does), or use fewer frames")
    out = np.zeros((n_frames,) + dims, dtype)
    for t in by_t:
        out[t] = load(t)
        if check is not None:
            check(t, out[t])
    return out


def read_frame_folder(path: str | Path, *, lazy: bool = False) -> Video:
    """Read a folder of per-frame 2D TIFFs, ordered by the number in each file name.

    Raises
    ------
    InputError
        Empty folder, frames of different sizes or pixel types, RGB frames, duplicate numbers.
    """
    path = Path(path)
    _exists(path)
    files = _tiffs(path)
    if not files:
        others = sorted(p.name for p in path.iterdir())[:5]
        raise InputError(f"{path} holds no TIFF frames (.tif/.tiff)"
                         + (f"; it holds {others}" if others else " (the folder is empty)"))
    numbered = _numbered(files, path)
    ordered = [p for _, p in numbered]
    image = _stack_of_files(ordered, len(ordered), list(range(len(ordered))), lazy=lazy,
                            what=str(path))
    meta = {"format": "frames", "files": [p.name for p in ordered],
            "frame_numbers": [n for n, _ in numbered], "dtype": np.dtype(image.dtype).name,
            **read_physical(ordered[0])}
    return Video(image=image, source=str(path), meta=meta)


# --------------------------------------------------------------------------------------------
# CTC
# --------------------------------------------------------------------------------------------
@dataclass
class CTCLayout:
    """Where the parts of one CTC sequence live (any part may be missing)."""

    dataset: Path
    sequence: str
    raw: list[tuple[int, Path]] = field(default_factory=list)
    tra: list[tuple[int, Path]] = field(default_factory=list)
    track_file: Path | None = None
    seg: list[tuple[int, Path]] = field(default_factory=list)
    st: list[tuple[int, Path]] = field(default_factory=list)
    err_seg: list[tuple[int, Path]] = field(default_factory=list)
    res: list[tuple[int, Path]] = field(default_factory=list)
    res_track_file: Path | None = None
    other_sequences: list[str] = field(default_factory=list)

    @property
    def seq_dir(self) -> Path:
        return self.dataset / self.sequence

    def n_frames(self) -> int:
        for part in (self.raw, self.tra, self.res, self.err_seg):
            if part:
                return max(t for t, _ in part) + 1
        for part in (self.seg, self.st):
            if part:
                return max(t for t, _ in part) + 1
        return 0


def _prefixed(folder: Path, prefix: str) -> list[tuple[int, Path]]:
    """Files ``prefix<digits>.tif`` in ``folder`` as (index, path), sorted."""
    if not folder.is_dir():
        return []
    pat = re.compile(rf"^{re.escape(prefix)}(\d+)\.tiff?$", re.IGNORECASE)
    out = []
    for p in folder.iterdir():
        m = pat.match(p.name)
        if m and p.is_file():
            out.append((int(m.group(1)), p))
    out.sort()
    return out


def find_ctc(path: str | Path, sequence: str | None = None) -> CTCLayout | None:
    """Recognise a CTC sequence at ``path``: ``DS/NN``, ``DS/NN_GT`` (etc.) or the dataset ``DS``.

    Returns None when ``path`` does not look like CTC data (then it may be a plain frame folder).
    For a dataset folder with several sequences, ``sequence`` picks one (default: the first).
    """
    path = Path(path)
    if not path.is_dir():
        return None
    name = path.name
    m = _ANNOT_DIR.match(name)
    if m:
        dataset, seq = path.parent, m.group(1)
    elif _SEQ_DIR.match(name) and (_prefixed(path, "t") or any(
            (path.parent / f"{name}_{k}").is_dir() for k in ("GT", "ST", "ERR_SEG", "RES"))):
        dataset, seq = path.parent, name
    else:
        seqs = sorted({
            (mm.group(1) if (mm := _ANNOT_DIR.match(p.name)) else p.name)
            for p in path.iterdir()
            if p.is_dir() and (_SEQ_DIR.match(p.name) or _ANNOT_DIR.match(p.name))
        })
        if not seqs:
            return None
        if sequence is not None:
            if sequence not in seqs:
                raise InputError(f"{path}: no CTC sequence {sequence!r}; it has {seqs}")
            seq = sequence
        else:
            seq = seqs[0]
        dataset = path
        lay = _layout(dataset, seq)
        lay.other_sequences = [s for s in seqs if s != seq]
        return lay
    if sequence is not None and sequence != seq:
        raise InputError(f"{path} is sequence {seq}, not {sequence!r}")
    return _layout(dataset, seq)


def _layout(dataset: Path, seq: str) -> CTCLayout:
    lay = CTCLayout(dataset=dataset, sequence=seq)
    lay.raw = _prefixed(dataset / seq, "t")
    gt = dataset / f"{seq}_GT"
    lay.tra = _prefixed(gt / "TRA", "man_track")
    if (gt / "TRA" / "man_track.txt").is_file():
        lay.track_file = gt / "TRA" / "man_track.txt"
    lay.seg = _prefixed(gt / "SEG", "man_seg")
    lay.st = _prefixed(dataset / f"{seq}_ST" / "SEG", "man_seg")
    lay.err_seg = _prefixed(dataset / f"{seq}_ERR_SEG", "mask")
    res = dataset / f"{seq}_RES"
    lay.res = _prefixed(res, "mask")
    if (res / "res_track.txt").is_file():
        lay.res_track_file = res / "res_track.txt"
    seg_dir = gt / "SEG"
    if seg_dir.is_dir() and any(re.match(r"^man_seg_\d+_\d+\.tiff?$", p.name)
                                for p in seg_dir.iterdir()):
        raise InputError(f"{seg_dir} holds 3D slice annotations (man_seg_TTT_ZZZ.tif); "
                         "napari-bvdm reads 2D sequences only")
    return lay


def read_ctc(
    path: str | Path, *, lazy: bool = False, sequence: str | None = None, check: bool = True,
) -> Video:
    """Read a CTC sequence: raw frames plus every annotation beside it.

    ``labels`` gets ``"TRA"`` (``NN_GT/TRA``, with ``lineage`` from ``man_track.txt``), ``"SEG"``
    (``NN_GT/SEG``, sparse: frames without a file are zero, annotated frames in ``seg_frames``),
    ``"ST"`` (``NN_ST/SEG``, annotated frames in ``meta["st_frames"]``), ``"ERR_SEG"``
    (``NN_ERR_SEG``) and ``"RES"`` (``NN_RES``, its lineage in ``meta["res_lineage"]``).

    Parameters
    ----------
    path : path
        ``DS/NN``, ``DS/NN_GT`` or the dataset folder ``DS``.
    lazy : bool
        Decode frames on access (:class:`FrameStack`) instead of reading everything now.
    sequence : str, optional
        Which sequence of a dataset folder (default: the first, e.g. ``"01"``).
    check : bool
        Check that ``man_track.txt`` agrees with the TRA masks (CTC rules 1-8); this decodes
        every TRA frame once (also in lazy mode).

    Raises
    ------
    InputError
        Not CTC data, malformed or inconsistent track file, label images of the wrong type or size.
    """
    path = Path(path)
    _exists(path)
    lay, n = _ctc_layout(path, sequence)
    where = f"{lay.dataset.name}/{lay.sequence}"
    meta: dict = {"format": "ctc", "dataset": str(lay.dataset), "sequence": lay.sequence,
                  "other_sequences": lay.other_sequences}
    image = _ctc_raw(lay, n, lazy=lazy, where=where)
    if image is not None:
        meta["dtype"] = np.dtype(image.dtype).name
        meta.update(read_physical(lay.raw[0][1]))
    digits = {len(re.findall(r"\d+", p.stem)[-1]) for part in (lay.raw, lay.tra, lay.seg)
              for _, p in part}
    meta["digits"] = sorted(digits)
    shape_ref = tuple(image.shape) if image is not None else None
    labels, seg_frames = _ctc_annotations(lay, n, shape_ref, meta, lazy=lazy, where=where)
    lineage = _ctc_lineages(lay, labels, meta, check=check, where=where)
    return Video(image=image, labels=labels, lineage=lineage, seg_frames=seg_frames,
                 source=str(lay.seq_dir), meta=meta)


def _ctc_layout(path: Path, sequence: str | None) -> tuple[CTCLayout, int]:
    """The CTC layout at ``path`` and its number of frames; :class:`InputError` when there is none."""
    lay = find_ctc(path, sequence)
    if lay is None:
        raise InputError(f"{path} is not a CTC sequence (expected NN/tTTT.tif with NN_GT/... beside "
                         "it, or a dataset folder holding them)")
    n = lay.n_frames()
    if n == 0:
        raise InputError(f"{lay.seq_dir}: no frames found (tTTT.tif, NN_GT/TRA/man_trackTTT.tif, ...)")
    return lay, n


def _ctc_raw(lay: CTCLayout, n: int, *, lazy: bool, where: str):
    """The raw frames ``tTTT.tif`` as a (T, Y, X) array, or None when there are none."""
    if not lay.raw:
        return None
    idx = [t for t, _ in lay.raw]
    if idx != list(range(len(idx))):
        missing = sorted(set(range(max(idx) + 1)) - set(idx))
        raise InputError(f"{lay.seq_dir}: raw frames are not numbered 0..T-1 without gaps "
                         f"(missing {missing[:5]})")
    return _stack_of_files([p for _, p in lay.raw], n, idx, lazy=lazy, what=f"{where} raw frames")


def _ctc_annotations(
    lay: CTCLayout, n: int, shape_ref: tuple | None, meta: dict, *, lazy: bool, where: str,
) -> tuple[dict, list[int]]:
    """Label videos by kind and the SEG frames; adds ``st_frames`` and ``warnings`` to ``meta``."""
    seq = lay.sequence
    labels: dict = {}
    seg_frames: list[int] = []
    for kind, part, sub in (("TRA", lay.tra, f"{seq}_GT/TRA"), ("SEG", lay.seg, f"{seq}_GT/SEG"),
                            ("ST", lay.st, f"{seq}_ST/SEG"), ("ERR_SEG", lay.err_seg, f"{seq}_ERR_SEG"),
                            ("RES", lay.res, f"{seq}_RES")):
        if not part:
            continue
        idx = [t for t, _ in part]
        arr = _stack_of_files([p for _, p in part], n, idx, lazy=lazy, what=f"{where} {sub}",
                              label=True)
        if shape_ref is not None and tuple(arr.shape) != shape_ref:
            raise InputError(f"{where} {sub}: label images are {tuple(arr.shape)[1:]} but the raw "
                             f"frames are {shape_ref[1:]}; annotations must match the frames")
        shape_ref = shape_ref or tuple(arr.shape)
        labels[kind] = arr
        if kind == "SEG":
            seg_frames = idx
        elif kind == "ST":
            meta["st_frames"] = idx
        elif kind in ("TRA", "ERR_SEG", "RES") and len(idx) != n:
            meta.setdefault("warnings", []).append(
                f"{sub}: {n - len(idx)} of {n} frames have no label image")
    return labels, seg_frames


def _ctc_lineages(lay: CTCLayout, labels: dict, meta: dict, *, check: bool, where: str) -> np.ndarray | None:
    """The GT lineage (``man_track.txt``); the RES lineage goes to ``meta["res_lineage"]``.

    With ``check``, each lineage is checked against its label video.
    """
    seq = lay.sequence
    lineage = None
    if lay.tra:
        if lay.track_file is None:
            raise InputError(f"{where}: {seq}_GT/TRA has label images but no man_track.txt; the "
                             "lineage file 'L B E P' is required")
        lineage = _read_tracks(lay.track_file)
        if check:
            _check_tracks(f"{where} {seq}_GT/TRA", labels["TRA"], lineage)
    elif lay.track_file is not None:
        lineage = _read_tracks(lay.track_file)
    if lay.res and lay.res_track_file is not None:
        meta["res_lineage"] = _read_tracks(lay.res_track_file)
        if check:
            _check_tracks(f"{where} {seq}_RES", labels["RES"], meta["res_lineage"])
    return lineage


def _check_tracks(where: str, labels, lineage: np.ndarray) -> None:
    from .validator import check_lineage

    per_frame = frame_label_sets(labels[t] for t in range(len(labels)))
    problems = check_lineage(lineage, per_frame, len(labels))
    if problems:
        shown = "; ".join(str(v) for v in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InputError(f"{where}: the track file disagrees with the label images: {shown}{more}. "
                         "Fix man_track.txt or read with check=False")


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------
def read_video(
    path: str | Path, *, lazy: bool = False, sequence: str | None = None, check: bool = True,
) -> Video:
    """Read any supported video: CTC sequence or dataset, frame folder, multi-page or 2D TIFF.

    Parameters
    ----------
    path : path
        A ``.tif``/``.tiff`` file, a folder of per-frame TIFFs, a CTC sequence folder ``DS/NN``
        (or ``DS/NN_GT``), or a CTC dataset folder ``DS``.
    lazy : bool
        Return lazily decoded arrays (for napari / large videos) instead of numpy arrays.
    sequence : str, optional
        CTC only: which sequence of a dataset folder.
    check : bool
        CTC only: check the lineage against the TRA masks.

    Returns
    -------
    Video
        ``image`` (T, Y, X) in the file's dtype, ``labels`` by kind, ``lineage``, ``seg_frames``.

    Examples
    --------
    >>> v = read_video("../shared/data/Fluo-N2DH-GOWT1/01")      # doctest: +SKIP
    >>> v.image.shape, v.labels["TRA"].dtype, v.seg_frames[:3]    # doctest: +SKIP
    ((92, 1024, 1024), dtype('uint16'), [2, 5, 6])
    """
    path = Path(path)
    _exists(path)
    if path.is_file():
        return read_tiff(path, lazy=lazy)
    lay = find_ctc(path, sequence)
    if lay is not None and lay.n_frames() > 0:
        return read_ctc(path, lazy=lazy, sequence=sequence, check=check)
    return read_frame_folder(path, lazy=lazy)
