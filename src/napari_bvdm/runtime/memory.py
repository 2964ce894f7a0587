"""The C allocator's settings for generation: keep freed memory instead of returning it to the system.

Painting a frame allocates and frees the same large buffers (crops, network activations) many times. glibc
gives memory above its trim threshold back to the kernel and takes it again on the next allocation, which
shows as system time (page faults): 1024 x 1024 frames with 50 cells spent as much time in the kernel as in
the network. Raising the trim threshold and the top pad keeps those pages: measured on a 2-core CPU, 6 frames
of 1024 x 1024 with 50 cells took 36 s instead of 48-57 s (system time 19 s instead of 43-49 s), for 11 % more
resident memory (833 MB instead of 748 MB); see docs/benchmarks.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD = -1, -2
_done: list[bool] = []


def keep_freed_memory() -> bool:
    """Tune glibc's ``malloc`` once per process (Linux only); ``True`` when it was tuned.

    ``NAPARI_BVDM_KEEP_FREED_MEMORY=0`` leaves the allocator as it is (for comparisons).
    """
    if _done:
        return _done[0]
    ok = False
    if sys.platform.startswith("linux") and os.environ.get("NAPARI_BVDM_KEEP_FREED_MEMORY", "1") != "0":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):
                ok = bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TOP_PAD, 256 << 20))
        except OSError:
            ok = False
    _done.append(ok)
    return ok
