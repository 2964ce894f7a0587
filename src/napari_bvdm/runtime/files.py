"""Small file helpers shared by every atomic writer (weights, models, settings, synthesis records)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["usual_permissions", "usual_folder_permissions"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_permissions(path: str | Path) -> None:
    """Give a ``tempfile.mkstemp`` file (created 0600) the permissions a plain ``open`` would: 0666 & ~umask."""
    os.chmod(path, 0o666 & ~_umask())


def usual_folder_permissions(path: str | Path) -> None:
    """Give a ``tempfile.mkdtemp`` folder (created 0700) the permissions ``mkdir`` would: 0777 & ~umask."""
    os.chmod(path, 0o777 & ~_umask())
