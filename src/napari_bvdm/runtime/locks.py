"""Owners of temporary files and an exclusive lock that survives its holder's death.

- :func:`owner_tag` names this process (a hash of the host name and the process id); temporary folders
  carry it in their names, so a later run can tell the leftovers of a killed run (:func:`owner_gone`)
  from the folders of a run still at work, on this machine or another one sharing the folder.
- :class:`FileLock` is an exclusive lock on a file (``flock``): the kernel releases it when its holder
  ends, even by SIGKILL. The holder may write a journal into the locked file; the next holder reads the
  journal of one that died (:attr:`FileLock.journal`) and finishes or undoes its work.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

__all__ = ["owner_tag", "parse_owner_tag", "owner_gone", "FileLock", "LockTimeout"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def owner_tag() -> str:
    """``HOST-PID`` of this process, e.g. ``3f2a9c1e-4711`` (no other dashes)."""
    return f"{_host()}-{os.getpid()}"


def parse_owner_tag(tag: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a tag written by :func:`owner_tag`; ``None`` for anything else."""
    host, _, pid = tag.partition("-")
    if len(host) != 8 or any(c not in "0123456789abcdef" for c in host) or not pid.isdigit():
        return None
    return host, int(pid)


def owner_gone(host: str, pid: int) -> bool:
    """True only when the owner is known to have ended: same host and no process with that id."""
    if host != _host():
        return False  # another machine: its processes cannot be seen from here
    if pid == os.getpid():
        return False
    if os.name == "nt":  # os.kill would end the process there; keep what may still be in use
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    except OSError:
        return False
    return False


class LockTimeout(TimeoutError):
    """The lock stayed held by another process for the whole wait."""


class FileLock:
    """Exclusive lock on ``path``, waited for up to ``timeout`` seconds.

    Use as a context manager. The file is removed on a normal release; a holder that dies leaves it,
    with whatever it wrote by :meth:`write_journal`, for the next holder to read in :attr:`journal`.
    """

    def __init__(self, path: str | Path, timeout: float = 30.0, poll: float = 0.02) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        self.poll = float(poll)
        self.journal = ""
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        """Take the lock; raises :class:`LockTimeout` after ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if self._try_lock(fd) and self._still_current(fd):
                self._fd = fd
                self.journal = self._read(fd)
                return self
            os.close(fd)
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{self.path} is held by another process")
            time.sleep(self.poll)

    @staticmethod
    def _try_lock(fd: int) -> bool:
        if fcntl is None:  # pragma: no cover - Windows
            import msvcrt

            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError:
                return False
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _still_current(self, fd: int) -> bool:
        """The locked file is still the one at ``path`` (an earlier holder may have removed it meanwhile)."""
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    @staticmethod
    def _read(fd: int) -> str:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def write_journal(self, text: str) -> None:
        """Replace the journal in the locked file (flushed to disk before returning)."""
        if self._fd is None:
            raise RuntimeError("the lock is not held")
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, text.encode())
        os.fsync(self._fd)

    def release(self) -> None:
        """Remove the lock file and let the next waiting process in."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # no journal: the work it described is done
            if fcntl is not None:
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
