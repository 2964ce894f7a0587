"""N synthetic videos -> one CTC dataset (``01``, ``02``, ... with ``_GT/SEG`` and ``_GT/TRA``) + synthesis.json.

Each video is streamed frame by frame into :class:`~napari_bvdm.io.ctc_writer.CTCSequenceWriter`, which
writes into a hidden temporary folder, validates the lineage against the labels (CTC rules 1-10) and
renames the sequence into place: a cancel or an error removes only the unfinished video, finished
ones stay valid. ``synthesis.json`` records every parameter, the SHA-256 of every model file and each
video's seed, so any video can be regenerated (same seed -> same pixels).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.video import InputError
from ..runtime.files import usual_permissions
from ..runtime.progress import CancelToken, Job, Progress
from ..runtime.weights import file_sha256
from .background import SceneStats
from .pipeline import SynthesisConfig, SynthFrame, generate_video

__all__ = ["MaskSet", "export_dataset", "video_seed", "SYNTHESIS_JSON"]

SYNTHESIS_JSON = "synthesis.json"


@dataclass
class MaskSet:
    """Masks for one video: labels ``(T, H, W)``, optional lineage and per-track brightness."""

    labels: Any
    lineage: np.ndarray | None = None
    brightness: dict[int, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def video_seed(seed: int, number: int, seed_offset: int = 0) -> int:
    """Seed of video ``number`` (1-based sequence number): ``seed + seed_offset + number - 1``.

    Videos are numbered globally, so ``--first-video 4`` in a second process gives the same video 04 as a
    single run would; ``seed_offset`` shifts the whole range to get new videos under the same numbers.
    """
    return int(seed) + int(seed_offset) + int(number) - 1


def _as_maskset(obj: Any) -> MaskSet:
    if isinstance(obj, MaskSet):
        return obj
    if hasattr(obj, "labels") and hasattr(obj, "lineage"):  # shapes.MaskVideo or io.Video-like
        labels = obj.labels
        if isinstance(labels, dict):  # io.video.Video
            main = obj.main_labels()
            if main is None:
                raise InputError("the mask source holds no labels")
            labels = main[1]
        return MaskSet(labels, getattr(obj, "lineage", None), getattr(obj, "brightness", None))
    if isinstance(obj, np.ndarray):
        return MaskSet(obj)
    raise InputError(f"mask source returned {type(obj).__name__}; expected labels, a MaskVideo or a MaskSet")


def export_dataset(
    out_dir: str | Path,
    masks: Callable[[int, int], Any] | Any,
    painter: Any,
    flow: Any | None,
    scene: SceneStats,
    config: SynthesisConfig | None = None,
    *,
    n_videos: int = 1,
    first_video: int = 1,
    seed_offset: int = 0,
    model_files: dict[str, str | Path | None] | None = None,
    parameters: dict[str, Any] | None = None,
    overwrite: bool = False,
    cancel: CancelToken | None = None,
) -> Job[Path]:
    """Generate and write ``n_videos`` videos; yields Progress, returns the dataset folder.

    Parameters
    ----------
    masks : the mask source: ``callable(number, seed) -> labels | MaskVideo | MaskSet | Job[...]``
        (e.g. a shape-model simulation with that seed), or one fixed label video / MaskSet used for
        every video (textures still differ by seed).
    config : synthesis settings; ``config.seed`` is the base seed (see :func:`video_seed`).
    n_videos, first_video : write sequences ``first_video .. first_video + n_videos - 1``.
    model_files : name -> path of every model file used (hashed into synthesis.json).
    parameters : other settings to record (mask simulation, CLI arguments, ...).
    overwrite : replace existing sequences of the same numbers.
    """
    from ..io.ctc_writer import CTCSequenceWriter

    cfg = config or SynthesisConfig()
    if n_videos < 1:
        raise InputError(f"n_videos = {n_videos}: give at least one video")
    if first_video < 1 or first_video + n_videos - 1 > 99:
        raise InputError(f"videos {first_video}..{first_video + n_videos - 1}: sequence numbers must be 1..99")
    out_dir = Path(out_dir)
    hashes = {k: {"path": str(v), "sha256": file_sha256(v)} for k, v in (model_files or {}).items() if v}
    record = {
        "generator": "napari-bvdm",
        "synthesis": cfg.to_dict(),
        "scene": scene.to_dict(),
        "models": hashes,
        "parameters": parameters or {},
        "painter": type(painter).__name__,
        "painter_config": _painter_settings(painter),
    }
    total = n_videos
    for i in range(n_videos):
        number = first_video + i
        seq = f"{number:02d}"
        seed = video_seed(cfg.seed, number, seed_offset)
        vcfg = cfg.replace(seed=seed)
        yield Progress(i, total, f"video {seq}: masks", stage="export")
        src = masks(number, seed) if callable(masks) else masks
        if isinstance(src, Generator):
            src = yield from _drain(src, cancel)
        ms = _as_maskset(src)
        n_frames = int(ms.labels.shape[0])
        writer = CTCSequenceWriter(out_dir, seq, n_frames=n_frames, overwrite=overwrite, cancel=cancel)
        t0 = time.monotonic()
        try:
            gen = generate_video(ms.labels, painter, flow, scene, vcfg, lineage=ms.lineage,
                                 brightness=ms.brightness, video_index=0, cancel=cancel)
            result = None
            while True:
                try:
                    ev = next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
                if isinstance(ev, SynthFrame):
                    writer.write_frame(ev.t, ev.image, ev.labels)
                else:
                    yield Progress(i * n_frames + ev.step, total * n_frames, f"video {seq}: {ev.message}",
                                   metrics=ev.metrics, stage="export")
            writer.close(result["lineage"])
        except BaseException:
            writer.abort()
            raise
        seconds = time.monotonic() - t0
        entry = {
            "seed": seed,
            "frames": n_frames,
            "size": [int(s) for s in ms.labels.shape[1:]],
            "tracks": int(len(result["lineage"])),
            "divisions": int(len(np.unique(result["lineage"][result["lineage"][:, 3] > 0, 3]))),
            "crop_size": int(result["crop_size"]),
            "painter_calls": int(result["painter_calls"]),
            "faint_cells": int(result.get("faint_cells", 0)),
            "seconds": round(seconds, 2),
            "seconds_per_frame": round(seconds / max(n_frames, 1), 4),
            "warnings": result["warnings"],
            "masks": ms.info,
        }
        _update_record(out_dir / SYNTHESIS_JSON, record, seq, entry)
        yield Progress(i + 1, total, f"video {seq} written ({seconds:.1f} s)", stage="export")
    return out_dir


def _drain(job: Generator, cancel: CancelToken | None):
    """Forward a sub-job's Progress events and return its result."""
    while True:
        if cancel is not None:
            cancel.check()
        try:
            ev = next(job)
        except StopIteration as stop:
            return stop.value
        except BaseException:
            job.close()
            raise
        if isinstance(ev, Progress):
            yield Progress(ev.step, ev.total, f"masks: {ev.message}", metrics=ev.metrics, stage="export-masks")


def _update_record(path: Path, record: dict[str, Any], seq: str, entry: dict[str, Any]) -> None:
    """Merge this video into synthesis.json (atomic replace, under a lock file for parallel writers)."""
    lock = path.with_name(path.name + ".lock")
    for _ in range(200):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            if time.time() - lock.stat().st_mtime > 60:
                lock.unlink(missing_ok=True)
            time.sleep(0.05)
    else:  # pragma: no cover - a stuck writer
        raise InputError(f"{lock} is held by another process for too long; remove it if no export is running")
    try:
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError:
                data = {}
        runs = data.get("runs", [])
        videos = data.get("videos", {})
        this = json.loads(json.dumps(record, default=_json_default))  # compare as stored
        if not runs or runs[-1] != this:
            runs.append(this)
        entry = {**entry, "run": len(runs) - 1}
        videos[seq] = entry
        out = {"format": "napari-bvdm synthesis record", "version": 1, "runs": runs,
               "videos": dict(sorted(videos.items()))}
        fd2, tmp = tempfile.mkstemp(prefix=".synthesis-", suffix=".json", dir=path.parent)
        usual_permissions(tmp)
        with os.fdopen(fd2, "w") as f:
            json.dump(out, f, indent=2, default=_json_default)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        os.close(fd)
        lock.unlink(missing_ok=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _painter_settings(painter: Any) -> dict[str, Any]:
    """The painter's settings for the record (DiffusionPainter: its config; ClassicalPainter: its statistics)."""
    for attr in ("config", "stats"):
        value = getattr(painter, attr, None)
        if hasattr(value, "to_dict"):
            return value.to_dict()
    return {}
