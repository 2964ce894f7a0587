"""N synthetic videos -> one CTC dataset (``01``, ``02``, ... with ``_GT/SEG`` and ``_GT/TRA``) + synthesis.json.

Each video is streamed frame by frame into :class:`~napari_bvdm.io.ctc_writer.CTCSequenceWriter`, which
writes into a hidden temporary folder and validates the lineage against the labels (CTC rules 1-10); the
masks are checked the same way before anything is painted. A finished video and its entry in
``synthesis.json`` are published together (:func:`_publish_video`):

- into a dataset folder that does not exist yet, the temporary folder, record included, is renamed into
  place in one step (a parallel process that made the folder first makes the others add to it);
- into an existing dataset, under the lock ``synthesis.json.lock``: the new record is written first, then
  the sequence folders and the record are moved in; the lock file journals the move, so when a process
  dies half way the next one to take the lock finishes it (:func:`tidy_dataset`).

A cancel, an error, SIGTERM or a full disk removes only the unfinished video; finished ones stay valid and
listed. ``synthesis.json`` records the run's resolved configuration once, the package version and the
SHA-256 of every model file, so the videos can be made again (``bvdm generate --config synthesis.json``;
same seed -> same pixels), and a run started again with ``resume`` adds only the videos still missing.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.video import InputError
from ..runtime.files import usual_folder_permissions
from ..runtime.locks import FileLock, LockTimeout, owner_tag
from ..runtime.progress import CancelToken, Job, Progress
from ..runtime.signals import deferred_interrupts
from ..runtime.weights import file_sha256
from .background import SceneStats
from .pipeline import SynthesisConfig, SynthFrame

__all__ = ["MaskSet", "export_dataset", "video_seed", "read_record", "tidy_dataset", "published_videos",
           "SYNTHESIS_JSON", "RECORD_FORMAT", "RECORD_VERSION", "LOCK_TIMEOUT_S"]

SYNTHESIS_JSON = "synthesis.json"
LOCK = SYNTHESIS_JSON + ".lock"
#: seconds a process waits for another one to finish publishing into the same dataset
LOCK_TIMEOUT_S = 30.0
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
    resume: bool = False,
    cancel: CancelToken | None = None,
    pixel_size: float | None = None,
    drafts: dict[int, Any] | None = None,
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
    resume : keep the videos of the range that the dataset already holds and lists with these settings;
        make only the missing ones (otherwise an existing sequence is an error, or replaced with overwrite).
    pixel_size : micrometres per pixel, written into every TIFF and the video's record (``None``: unknown).
    drafts : video number -> :class:`~napari_bvdm.synthesis.draft.VideoDraft` of that video made with these
        settings (e.g. a preview): its masks and frames are used, only the frames it lacks are painted.
    """
    cfg = config or SynthesisConfig()
    drafts = drafts or {}
    if n_videos < 1:
        raise InputError(f"n_videos = {n_videos}: give at least one video")
    if first_video < 1 or first_video + n_videos - 1 > 99:
        raise InputError(f"videos {first_video}..{first_video + n_videos - 1}: sequence numbers must be 1..99")
    out_dir = Path(out_dir)
    _check_folder_path(out_dir)
    run = _run_record(cfg, scene, painter, model_files, record)
    _check_existing(out_dir / SYNTHESIS_JSON, run)
    tidy_dataset(out_dir)
    for i in range(n_videos):
        number = first_video + i
        seq = f"{number:02d}"
        if resume and not overwrite and seq in published_videos(out_dir):
            yield Progress(i + 1, n_videos, f"video {seq} is already in the dataset: kept", stage="export")
            continue
        yield Progress(i, n_videos, f"video {seq}: masks", stage="export")
        seed = video_seed(cfg.seed, number)
        draft = drafts.get(number)
        src = None
        if draft is None:
            src = masks(number, seed) if callable(masks) else masks
            if isinstance(src, Generator):
                src = yield from _drain(src, cancel)
            src = _as_maskset(src)
        try:
            entry = yield from _write_video(out_dir, seq, src, painter, flow, scene, cfg.replace(seed=seed),
                                            (i, n_videos), _Publish(run, overwrite, resume), cancel, pixel_size,
                                            draft)
        except OSError as e:
            if not e.errno or type(e) is not OSError:  # already says what was published, or a usage error
                raise
            made = ", ".join(f"{first_video + k:02d}" for k in range(i))
            raise OSError(e.errno, f"{e.strerror or e}{f' ({e.filename})' if e.filename else ''}: video {seq} was "
                          "not written" + (f"; videos {made} are complete" if made else "")
                          + "; run the same command again to make the rest") from e
        yield Progress(i + 1, n_videos, f"video {seq} written ({entry['seconds']:.1f} s)", stage="export")
    return out_dir


def _check_folder_path(out_dir: Path) -> None:
    """The dataset folder, or the nearest of its parents that exists, must be a folder."""
    for p in (out_dir, *out_dir.parents):
        if p.exists():
            if not p.is_dir():
                inside = "" if p == out_dir else f", so {out_dir} cannot be made inside it"
                raise InputError(f"{p} is a file, not a folder{inside}; choose another output folder")
            return


def _run_record(cfg: SynthesisConfig, scene: SceneStats, painter: Any, model_files: dict | None,
                record: dict | None) -> dict[str, Any]:
    from .. import __version__

    hashes = {k: {"path": str(v), "sha256": file_sha256(v)} for k, v in (model_files or {}).items() if v}
    run = {"napari_bvdm": __version__, **(record or {}), "models": hashes, "engine": cfg.replace(seed=0).to_dict(),
           "painter": type(painter).__name__, "painter_config": _painter_settings(painter), "scene": scene.to_dict()}
    run["engine"].pop("seed", None)  # the seed lives in config (one place)
    return json.loads(json.dumps(run, default=_json_default))  # compare as stored


@dataclass
class _Publish:
    """How a finished video goes into its dataset: the run it belongs to and what to do with an existing one."""

    run: dict[str, Any]
    overwrite: bool = False
    resume: bool = False


def _check_masks(seq: str, labels: Any, lineage: np.ndarray) -> None:
    """CTC rules 1-8 for the masks and lineage of video ``seq``, before any frame is painted."""
    from ..io.ctc_writer import ExportError
    from ..io.lineage import frame_label_sets
    from ..io.validator import check_lineage

    n = int(labels.shape[0])
    problems = check_lineage(lineage, frame_label_sets(labels[t] for t in range(n)), n)
    if problems:
        shown = "; ".join(str(v) for v in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ExportError(f"the masks of video {seq} are not a valid CTC sequence, so nothing was painted: "
                          f"{shown}{more}", problems)


def _write_video(out_dir: Path, seq: str, ms: MaskSet, painter: Any, flow: Any, scene: SceneStats,
                 vcfg: SynthesisConfig, position: tuple[int, int], publish: _Publish, cancel: CancelToken | None,
                 pixel_size: float | None = None, draft: Any = None):
    """Check the masks, stream one video into its temporary CTC sequence and publish it with its record
    entry; returns the entry. A ``draft`` (:class:`~napari_bvdm.synthesis.draft.VideoDraft`) of this video
    gives its masks and the frames it already made; only the rest are painted."""
    from ..io.ctc_writer import CTCSequenceWriter

    i, total = position
    if draft is None:
        draft = new_draft(seq, ms, painter, flow, scene, vcfg, keep=False)  # written as made, never kept
    n_frames = draft.n_frames
    writer = CTCSequenceWriter(out_dir, seq, n_frames=n_frames, overwrite=publish.overwrite, cancel=cancel,
                               pixel_size=pixel_size)
    t0 = time.monotonic()
    try:
        gen = draft.run(cancel=cancel)
        while True:
            try:
                ev = next(gen)
            except StopIteration:
                break
            if isinstance(ev, SynthFrame):
                writer.write_frame(ev.t, ev.image, ev.labels)
            else:
                yield Progress(i * n_frames + ev.step, total * n_frames, f"video {seq}: {ev.message}",
                               metrics=ev.metrics, stage="export")
        writer.finish(draft.result["lineage"])
        entry = _entry(MaskSet(draft.labels, draft.lineage, draft.brightness, draft.info), draft.result, n_frames,
                       pixel_size, time.monotonic() - t0)
        _publish_video(out_dir, writer, seq, entry, publish)
    finally:
        writer.abort()  # what is left of the temporary folder
    return entry


def new_draft(seq: str, ms: MaskSet, painter: Any, flow: Any, scene: SceneStats, vcfg: SynthesisConfig, *,
              keep: bool = True):
    """A :class:`~napari_bvdm.synthesis.draft.VideoDraft` of video ``seq``, its masks checked (CTC rules 1-8)."""
    from .draft import VideoDraft
    from .pipeline import prepare_labels

    labels, lineage = prepare_labels(ms.labels, ms.lineage)
    _check_masks(seq, labels, lineage)
    return VideoDraft(labels, lineage, painter, flow, scene, vcfg, brightness=ms.brightness, info=ms.info, keep=keep)


def _entry(ms: MaskSet, result: dict[str, Any], n_frames: int, pixel_size: float | None,
           seconds: float) -> dict[str, Any]:
    """The record entry of one finished video."""
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
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
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


def published_videos(out_dir: str | Path) -> set[str]:
    """Sequence names that ``synthesis.json`` lists and whose ``NN`` and ``NN_GT`` folders are present."""
    out_dir = Path(out_dir)
    path = out_dir / SYNTHESIS_JSON
    if not path.is_file():
        return set()
    videos = read_record(path).get("videos", {})
    return {seq for seq in videos if (out_dir / seq).is_dir() and (out_dir / f"{seq}_GT").is_dir()}


def _record(run: dict[str, Any], videos: dict[str, Any]) -> dict[str, Any]:
    return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "run": run, "videos": dict(sorted(videos.items()))}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to a new file, flushed to disk (a full disk raises here, before anything is published)."""
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def _dataset_lock(out_dir: Path, what: str, timeout: float | None = None) -> Iterator[FileLock]:
    """The dataset's lock (waited for ``timeout`` s, default :data:`LOCK_TIMEOUT_S`); a previous holder's
    unfinished publication is finished first."""
    wait = LOCK_TIMEOUT_S if timeout is None else timeout
    lock = FileLock(out_dir / LOCK, timeout=wait)
    try:
        lock.acquire()
    except LockTimeout:
        raise LockTimeout(f"{lock.path} stayed locked by another process for {wait:.0f} s, so {what}; "
                          "run the same command again once the other process is done") from None
    try:
        _recover(out_dir, lock.journal)
        yield lock
    finally:
        lock.release()


def _move_in(out_dir: Path, staging: Path, parts: list[str]) -> None:
    """Move the sequence folders ``parts`` from ``staging`` into ``out_dir`` (an existing one aside into
    ``staging/.replaced``); on an error the moves made are undone. Parts already moved are skipped."""
    replaced = staging / ".replaced"
    done: list[tuple[Path, Path]] = []
    try:
        for name in parts:
            src, target = staging / name, out_dir / name
            if not src.exists():
                continue
            if target.exists():
                replaced.mkdir(exist_ok=True)
                os.replace(target, replaced / name)
                done.append((target, replaced / name))
            os.replace(src, target)
            done.append((src, target))
    except OSError:
        for a, b in reversed(done):
            os.replace(b, a)
        raise


def _recover(out_dir: Path, journal: str) -> None:
    """Finish the publication a process journalled in the lock and did not complete (it died)."""
    from ..io.ctc_writer import PUBLISHING

    try:
        j = json.loads(journal)
        staging, parts = Path(j["staging"]), [str(p) for p in j["parts"]]
    except (ValueError, KeyError, TypeError):
        return  # no journal, or one cut short before anything was moved
    if (staging / PUBLISHING).is_file():
        _move_in(out_dir, staging, parts)
        os.replace(staging / PUBLISHING, out_dir / SYNTHESIS_JSON)
    shutil.rmtree(staging, ignore_errors=True)


def tidy_dataset(out_dir: str | Path) -> None:
    """Finish a publication that a killed process left half done, and remove the temporary folders of
    runs that ended (a live run's folders are left alone)."""
    from ..io.ctc_writer import remove_stale_exports

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        remove_stale_exports(out_dir, keep_publishing=False)
        return
    try:
        with _dataset_lock(out_dir, "the dataset was not tidied", timeout=0):
            remove_stale_exports(out_dir, keep_publishing=False)
    except LockTimeout:  # a live process is publishing: it finishes any leftover work itself
        return
    except PermissionError:  # a folder this process cannot write to: the writer says so
        return


def _publish_new_dataset(out_dir: Path, staging: Path, seq: str, entry: dict[str, Any], run: dict[str, Any]) -> bool:
    """Rename the temporary folder, record included, into the dataset ``out_dir`` that does not exist yet;
    False when another process made ``out_dir`` first (then the video is added to it)."""
    _write_json(staging / SYNTHESIS_JSON, _record(run, {seq: entry}))
    usual_folder_permissions(staging)
    try:
        os.rename(staging, out_dir)
    except OSError as e:
        (staging / SYNTHESIS_JSON).unlink(missing_ok=True)
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def _publish_video(out_dir: Path, writer: Any, seq: str, entry: dict[str, Any], publish: _Publish) -> None:
    """Publish the finished sequence of ``writer`` together with its record entry (all of it or nothing)."""
    from ..io.ctc_writer import PUBLISHING

    staging, parts = writer.staging, writer.parts
    if not out_dir.exists() and staging.parent != out_dir:
        try:
            if _publish_new_dataset(out_dir, staging, seq, entry, publish.run):
                return
        except OSError as e:
            raise _not_published(seq, e) from None
    with _dataset_lock(out_dir, f"video {seq} was not published") as lock:
        videos: dict[str, Any] = {}
        path = out_dir / SYNTHESIS_JSON
        if path.exists():
            data = read_record(path)
            if not _same_run(data.get("run", {}), publish.run):
                raise InputError(f"{out_dir} now holds videos of other settings (written meanwhile by another "
                                 f"process); video {seq} was not published")
            videos = data.get("videos", {})
        present = [name for name in parts if (out_dir / name).exists()]
        if publish.resume and seq in videos and len(present) == len(parts):
            return  # another run of the same settings published it meanwhile
        if present and not publish.overwrite:
            raise FileExistsError(f"{out_dir / present[-1]} already exists; choose another folder or sequence, or "
                                  "pass overwrite=True (--overwrite) to replace it")
        videos[seq] = entry
        try:
            _write_json(staging / PUBLISHING, _record(publish.run, videos))
            lock.write_journal(json.dumps({"owner": owner_tag(), "staging": str(staging), "parts": parts}))
        except OSError as e:
            raise _not_published(seq, e) from None
        with deferred_interrupts():
            _move_in(out_dir, staging, parts)
            os.replace(staging / PUBLISHING, path)


def _not_published(seq: str, e: OSError) -> OSError:
    """One-line error for a publication that failed before anything was moved."""
    where = f" ({e.filename})" if e.filename else ""
    err = OSError(f"video {seq} was not published: {e.strerror or e}{where}; the dataset is as it was before")
    err.errno = e.errno
    return err


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
