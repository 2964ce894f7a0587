"""A lazy (T, Y, X) array that decodes one frame at a time.

Compressed TIFF frames (LZW, zlib: all of the CTC data) cannot be memory-mapped, so a video is
represented by :class:`FrameStack`: it knows its shape and dtype from the file headers and decodes
a frame only when it is indexed. napari displays it directly (it only needs ``shape``, ``dtype``,
``ndim`` and ``__getitem__``), and ``np.asarray(stack)`` reads all frames into *one* preallocated
array (no second copy) after checking that it fits in memory (:func:`check_memory`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["FrameStack", "materialize", "memory_limit", "check_memory", "format_bytes", "MEMORY_LIMIT_ENV"]

MEMORY_LIMIT_ENV = "NAPARI_BVDM_MAX_READ_GB"


def _available_memory() -> int | None:
    """Bytes of memory the system can still hand out, or None where that cannot be told."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def memory_limit() -> tuple[int | None, str]:
    """The most bytes one read may put into memory, and where that number comes from.

    ``NAPARI_BVDM_MAX_READ_GB`` (GiB, e.g. ``"8"`` or ``"0.5"``) sets it; otherwise it is the memory
    available now. ``(None, ...)`` means no limit is known.
    """
    env = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if env:
        from .video import InputError

        try:
            gb = float(env)
        except ValueError:
            gb = -1.0
        if not gb > 0:
            raise InputError(f"{MEMORY_LIMIT_ENV}={env!r} must be a positive number of GiB, e.g. 8")
        return int(gb * 2**30), f"the limit {MEMORY_LIMIT_ENV}={env}"
    avail = _available_memory()
    return avail, "the memory available now"


def format_bytes(n: int | float) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``80000000000`` -> ``"74.5 GiB"``."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def check_memory(nbytes: int, what: str, hint: str = "") -> None:
    """Raise :class:`~napari_bvdm.io.video.InputError` before ``what`` allocates more than allowed.

    Parameters
    ----------
    nbytes : int
        Bytes the allocation needs.
    what : str
        What would be allocated, starting the message (e.g. ``"reading x.tif (3 frames of ...)"``).
    hint : str
        What to do instead, appended to the message.
    """
    limit, source = memory_limit()
    if limit is None or nbytes <= limit:
        return
    from .video import InputError

    raise InputError(
        f"{what} needs {format_bytes(nbytes)} of memory, more than {source} ({format_bytes(limit)}); "
        + (hint or f"use a smaller video (or set {MEMORY_LIMIT_ENV} to the GiB you can spare)")
    )


class FrameStack:
    """Read-only lazy stack of equally sized 2D frames.

    Parameters
    ----------
    load : callable ``(t) -> ndarray (Y, X)``
        Decodes frame ``t``. It is only called for ``t`` in ``present`` (other frames are zeros).
    n_frames : int
        Number of frames ``T``.
    frame_shape : tuple (Y, X)
        Shape of every frame.
    dtype : numpy dtype
        Dtype of every frame (checked on load).
    present : sequence of int, optional
        Frames that exist on disk; the others read as zeros (sparse annotation such as CTC
        ``man_seg``). Default: all frames.
    cache_size : int
        How many decoded frames to keep (least recently used are dropped).
    name : str
        Shown in error messages and ``repr``.
    check : callable ``(t, frame) -> None``, optional
        Called with every decoded frame; raises (e.g. :class:`~napari_bvdm.io.video.InputError`) for
        values the frame must not hold, such as negative labels.
    """

    def __init__(
        self,
        load: Callable[[int], np.ndarray],
        n_frames: int,
        frame_shape: tuple[int, int],
        dtype: np.dtype | type,
        *,
        present: Sequence[int] | None = None,
        cache_size: int = 4,
        name: str = "",
        check: Callable[[int, np.ndarray], None] | None = None,
    ) -> None:
        self._load = load
        self._check = check
        self._shape = (int(n_frames), int(frame_shape[0]), int(frame_shape[1]))
        self._dtype = np.dtype(dtype)
        self._present = (
            frozenset(range(self._shape[0])) if present is None else frozenset(int(t) for t in present)
        )
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(0, int(cache_size))
        self._lock = threading.Lock()
        self.name = name

    # --- numpy-like attributes ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def ndim(self) -> int:
        return 3

    @property
    def size(self) -> int:
        return int(np.prod(self._shape))

    @property
    def nbytes(self) -> int:
        return self.size * self._dtype.itemsize

    @property
    def present(self) -> list[int]:
        """Frames that exist on disk (sorted)."""
        return sorted(self._present)

    def __len__(self) -> int:
        return self._shape[0]

    def __repr__(self) -> str:
        return f"FrameStack({self.name!r}, shape={self._shape}, dtype={self._dtype.name})"

    # --- reading -----------------------------------------------------------------------------
    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as a read-only array (zeros for frames that are not present)."""
        t = int(t)
        if t < 0:
            t += self._shape[0]
        if not 0 <= t < self._shape[0]:
            raise IndexError(f"frame {t} out of range for {self._shape[0]} frames")
        if t not in self._present:
            out = np.zeros(self._shape[1:], self._dtype)
            out.flags.writeable = False
            return out
        with self._lock:
            hit = self._cache.get(t)
            if hit is not None:
                self._cache.move_to_end(t)
                return hit
        arr = self._decode(t)
        arr.flags.writeable = False
        if self._cache_size:
            with self._lock:
                self._cache[t] = arr
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return arr

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (3 - (len(key) - 1))
            key = key[:i] + fill + key[i + 1 :]
        tkey, rest = key[0], key[1:]
        if isinstance(tkey, (int, np.integer)):
            return self.frame(int(tkey))[rest] if rest else self.frame(int(tkey))
        if isinstance(tkey, slice):
            ts = range(*tkey.indices(self._shape[0]))
        else:
            ts = np.arange(self._shape[0])[np.asarray(tkey)]
            if np.ndim(ts) == 0:
                return self[(int(ts),) + rest]
        first = self.frame(ts[0])[rest] if len(ts) else np.zeros(self._shape[1:], self._dtype)[rest]
        out = np.empty((len(ts),) + first.shape, self._dtype)
        for i, t in enumerate(ts):
            out[i] = self.frame(t)[rest] if rest else self.frame(t)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        check_memory(self.nbytes, f"reading all {self._shape[0]} frames of {self.name or 'the video'} into memory",
                     f"read it frame by frame, or set {MEMORY_LIMIT_ENV} to the GiB you can spare")
        out = np.empty(self._shape, self._dtype)
        for t in range(self._shape[0]):
            if t in self._present:
                out[t] = self._load_uncached(t)
            else:
                out[t] = 0
        return out if dtype is None else out.astype(dtype, copy=False)

    def _decode(self, t: int) -> np.ndarray:
        arr = np.asarray(self._load(t))
        if arr.shape != self._shape[1:] or arr.dtype != self._dtype:
            from .video import InputError

            raise InputError(
                f"{self.name or 'video'}: frame {t} has shape {arr.shape} and dtype {arr.dtype}, "
                f"expected {self._shape[1:]} {self._dtype}; all frames must have one size and dtype"
            )
        if self._check is not None:
            self._check(t, arr)
        return arr

    def _load_uncached(self, t: int) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(t)
        return hit if hit is not None else self._decode(t)

    def iter_frames(self):
        """Yield every frame in order without filling the cache."""
        for t in range(self._shape[0]):
            if t in self._present:
                yield self._load_uncached(t)
            else:
                yield np.zeros(self._shape[1:], self._dtype)

    def compute(self) -> np.ndarray:
        """All frames as one in-memory array (like ``np.asarray``)."""
        return np.asarray(self)

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        """All frames as an in-memory array of ``dtype``."""
        return np.asarray(self).astype(dtype, copy=False)

    def max(self) -> np.generic:
        """Largest value over all frames (streamed)."""
        return max(f.max() for f in self.iter_frames())

    def min(self) -> np.generic:
        """Smallest value over all frames (streamed)."""
        return min(f.min() for f in self.iter_frames())


def materialize(arr) -> np.ndarray:
    """``arr`` as an in-memory numpy array (a :class:`FrameStack` is read frame by frame)."""
    return arr if isinstance(arr, np.ndarray) else np.asarray(arr)
