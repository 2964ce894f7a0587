"""Safe weights files: safetensors with the model kind, format version, config and extras inside.

Loading never executes code (no pickle). A file of another model kind or format version raises
:class:`WeightsError` with a message that says what the file is and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .files import usual_permissions

FORMAT = "napari-bvdm-weights"
FORMAT_VERSION = 1


class WeightsError(ValueError):
    """A weights file is unreadable, of another kind, or of an unsupported version."""


def save_weights(
    path: str | Path,
    kind: str,
    tensors: dict[str, Any],
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``tensors`` (name -> torch tensor) with JSON metadata, atomically.

    Parameters
    ----------
    path : path of the ``.safetensors`` file to write.
    kind : model kind, e.g. ``"texture-ddpm"`` or ``"flow"``; checked on load.
    tensors : state dict (tensors are made contiguous and moved to the CPU).
    config : the model's config as a JSON-able dict.
    extra : other JSON-able metadata (normalisation, training history, data source).
    """
    from safetensors.torch import save_file

    from .. import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "kind": kind,
        "package_version": __version__,
        "config": json.dumps(config, sort_keys=True),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file(clean, tmp, metadata=meta)
        usual_permissions(tmp)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Metadata of a weights file without loading tensors: kind, versions, config, extra."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types
        raise WeightsError(
            f"{path} is not a safetensors weights file ({type(e).__name__}: {e}); "
            "napari-bvdm never loads pickled checkpoints"
        ) from None
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path} is a safetensors file but not a napari-bvdm weights file")
    return {
        "format_version": int(meta.get("format_version", "0")),
        "kind": meta.get("kind", "?"),
        "package_version": meta.get("package_version", "?"),
        "config": json.loads(meta.get("config", "{}")),
        "extra": json.loads(meta.get("extra", "{}")),
    }


def load_weights(path: str | Path, kind: str, device: str = "cpu"):
    """Load a weights file of model ``kind``; return ``(tensors, metadata)``.

    Raises
    ------
    WeightsError
        If the file is missing, not safetensors, of another kind or of a newer format version.
    """
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta["kind"] != kind:
        raise WeightsError(
            f"{path} holds a {meta['kind']!r} model, but a {kind!r} model was expected"
        )
    if meta["format_version"] != FORMAT_VERSION:
        raise WeightsError(
            f"{path} has weights format version {meta['format_version']} (written by napari-bvdm "
            f"{meta['package_version']}); this version reads format {FORMAT_VERSION}"
        )
    tensors = load_file(str(path), device=str(device))
    return tensors, meta


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (recorded in synthesis.json so runs can be traced)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
