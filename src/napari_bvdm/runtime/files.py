"""Small file helpers shared by every atomic writer (weights, models, settings, synthesis records)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["usual_permissions"]


def usual_permissions(path: str | Path) -> None:
    """Give a ``tempfile.mkstemp`` file (created 0600) the permissions a plain ``open`` would: 0666 & ~umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
