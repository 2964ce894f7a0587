"""N synthetic videos -> one CTC dataset (``01``, ``02``, ... with ``_GT/SEG`` and ``_GT/TRA``) + synthesis.json.

Each video is streamed frame by frame into :class:`~napari_bvdm.io.ctc_writer.CTCSequenceWriter`, which
writes into a hidden temporary folder, validates the lineage against the labels (CTC rules 1-10) and
renames the sequence into place: a cancel or an error removes only the unfinished video, finished
ones stay valid. ``synthesis.json`` records the run's resolved configuration once, the package version and
the SHA-256 of every model file, so the videos can be made again (``bvdm generate --config synthesis.json``;
same seed -> same pixels).
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

__all__ = ["MaskSet", "export_dataset", "video_seed", "read_record", "SYNTHESIS_JSON", "RECORD_FORMAT",
           "RECORD_VERSION"]

SYNTHESIS_JSON = "synthesis.json"
RECORD_FORMAT = "napari-bvdm synthesis record"
#: 2: the resolved GenerateConfig stored once (``config``), no per-video seeds (video n: seed + n - 1)
RECORD_VERSION = 2


@dataclass
class MaskSet:
    """Masks for one video: labels ``(T, H, W)``, optional lineage and per-track brightness."""

    labels: Any
    lineage: np.ndarray | None = None
    brightness: dict[int, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def video_seed(seed: int, number: int) -> int:
    """Seed of video ``number`` (1-based sequence number): ``seed + number - 1``.

    Videos are numbered globally, so ``--first-video 4`` in a second process gives the same video 04 as a
    single run would.
    """
    return int(seed) + int(number) - 1


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
    model_files: dict[str, str | Path | None] | None = None,
    record: dict[str, Any] | None = None,
    overwrite: bool = False,
    cancel: CancelToken | None = None,
    pixel_size: float | None = None,
) -> Job[Path]:
    """Generate and write ``n_videos`` videos; yields Progress, returns the dataset folder.

    Parameters
    ----------
    masks : the mask source: ``callable(number, seed) -> labels | MaskVideo | MaskSet | Job[...]``
        (e.g. a shape-model simulation with that seed), or one fixed label video / MaskSet used for
        every video (textures still differ by seed).
    config : the engine's settings; ``config.seed`` is the base seed (see :func:`video_seed`).
    n_videos, first_video : write sequences ``first_video .. first_video + n_videos - 1``.
    model_files : name -> path of every model file used (hashed into synthesis.json).
    record : what the run was made from (``config``: the resolved :class:`GenerateConfig` as a dict,
        ``source``, ``inputs``); an existing dataset only takes more videos of the same config.
    overwrite : replace existing sequences of the same numbers.
    pixel_size : micrometres per pixel, written into every TIFF and the video's record (``None``: unknown).
    """
    cfg = config or SynthesisConfig()
    if n_videos < 1:
        raise InputError(f"n_videos = {n_videos}: give at least one video")
    if first_video < 1 or first_video + n_videos - 1 > 99:
        raise InputError(f"videos {first_video}..{first_video + n_videos - 1}: sequence numbers must be 1..99")
    out_dir = Path(out_dir)
    run = _run_record(cfg, scene, painter, model_files, record)
    _check_existing(out_dir / SYNTHESIS_JSON, run)
    for i in range(n_videos):
        number = first_video + i
        seq = f"{number:02d}"
        yield Progress(i, n_videos, f"video {seq}: masks", stage="export")
        seed = video_seed(cfg.seed, number)
        src = masks(number, seed) if callable(masks) else masks
        if isinstance(src, Generator):
            src = yield from _drain(src, cancel)
        entry = yield from _write_video(out_dir, seq, _as_maskset(src), painter, flow, scene, cfg.replace(seed=seed),
                                        (i, n_videos), overwrite, cancel, pixel_size)
        _update_record(out_dir / SYNTHESIS_JSON, run, seq, entry)
        yield Progress(i + 1, n_videos, f"video {seq} written ({entry['seconds']:.1f} s)", stage="export")
    return out_dir


def _run_record(cfg: SynthesisConfig, scene: SceneStats, painter: Any, model_files: dict | None,
                record: dict | None) -> dict[str, Any]:
    from .. import __version__

    hashes = {k: {"path": str(v), "sha256": file_sha256(v)} for k, v in (model_files or {}).items() if v}
    run = {"napari_bvdm": __version__, **(record or {}), "models": hashes, "engine": cfg.replace(seed=0).to_dict(),
           "painter": type(painter).__name__, "painter_config": _painter_settings(painter), "scene": scene.to_dict()}
    run["engine"].pop("seed", None)  # the seed lives in config (one place)
    return json.loads(json.dumps(run, default=_json_default))  # compare as stored


def _write_video(out_dir: Path, seq: str, ms: MaskSet, painter: Any, flow: Any, scene: SceneStats,
                 vcfg: SynthesisConfig, position: tuple[int, int], overwrite: bool, cancel: CancelToken | None,
                 pixel_size: float | None = None):
    """Stream one video into its CTC sequence (atomic); returns its record entry."""
    from ..io.ctc_writer import CTCSequenceWriter

    i, total = position
    n_frames = int(ms.labels.shape[0])
    writer = CTCSequenceWriter(out_dir, seq, n_frames=n_frames, overwrite=overwrite, cancel=cancel,
                               pixel_size=pixel_size)
    t0 = time.monotonic()
    try:
        gen = generate_video(ms.labels, painter, flow, scene, vcfg, lineage=ms.lineage,
                             brightness=ms.brightness, video_index=0, cancel=cancel)
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
    lin = result["lineage"]
    return {
        "frames": n_frames,
        "size": [int(s) for s in ms.labels.shape[1:]],
        "pixel_size": pixel_size,
        "tracks": int(len(lin)),
        "divisions": int(len(np.unique(lin[lin[:, 3] > 0, 3]))),
        "crop_size": int(result["crop_size"]),
        "painter_calls": int(result["painter_calls"]),
        "seconds": round(seconds, 2),
        "seconds_per_frame": round(seconds / max(n_frames, 1), 4),
        "warnings": result["warnings"],
        "masks": ms.info,
    }


def read_record(path: str | Path) -> dict[str, Any]:
    """Read a ``synthesis.json``; a damaged file or one of another format version is a clear error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is damaged ({e}); it is left as it is: repair it or write into a new folder") \
            from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise InputError(f"{path} is not a napari-bvdm synthesis record")
    if data.get("version") != RECORD_VERSION:
        raise InputError(f"{path} was written by another version of napari-bvdm (record format "
                         f"{data.get('version')}, this version reads {RECORD_VERSION}); write into a new folder, "
                         "or make the videos again with this version")
    return data


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two runs make the same kind of videos: equal but for the output range and the package version."""
    def strip(r: dict[str, Any]) -> dict[str, Any]:
        r = json.loads(json.dumps(r))
        r.pop("napari_bvdm", None)
        r.get("config", {}).pop("output", None)
        return r

    return strip(a) == strip(b)


def _check_existing(path: Path, run: dict[str, Any]) -> None:
    if not path.exists():
        return
    data = read_record(path)
    if not _same_run(data.get("run", {}), run):
        raise InputError(f"{path.parent} holds videos made with other settings or models; write into a new "
                         "folder (a dataset holds videos of one configuration)")


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


def _update_record(path: Path, run: dict[str, Any], seq: str, entry: dict[str, Any]) -> None:
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
        videos: dict[str, Any] = {}
        if path.exists():
            data = read_record(path)
            if not _same_run(data.get("run", {}), run):
                raise InputError(f"{path.parent} now holds videos of other settings (written meanwhile by "
                                 "another process); this video is not recorded")
            videos = data.get("videos", {})
        videos[seq] = entry
        out = {"format": RECORD_FORMAT, "version": RECORD_VERSION, "run": run, "videos": dict(sorted(videos.items()))}
        fd2, tmp = tempfile.mkstemp(prefix=".synthesis-", suffix=".json", dir=path.parent)
        try:
            usual_permissions(tmp)
            with os.fdopen(fd2, "w") as f:
                json.dump(out, f, indent=2, default=_json_default)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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
