"""Image / mask pairs for the segmenters people fine-tune, converted from any CTC dataset.

- ``cellpose``: one folder of ``NAME.tif`` images and ``NAME_masks.tif`` instance masks: the layout
  ``cellpose.io.load_train_test_data(folder, mask_filter="_masks")`` and ``python -m cellpose --train --dir
  FOLDER --mask_filter _masks`` read.
- ``stardist``: ``images/NAME.tif`` and ``masks/NAME.tif`` with the same names, as StarDist's training
  notebooks load them (``sorted(glob("images/*.tif"))`` paired with ``sorted(glob("masks/*.tif"))``).

One pair per frame that has full masks: every ``SEG`` frame (a synthetic dataset annotates them all; a real
CTC sequence its ``man_seg`` frames). ``NAME`` is ``<sequence>_t<frame>``. Images keep their pixel type and
pixel size (TIFF resolution); masks are ``uint16`` (``uint32`` above 65535 labels). The folder is written
beside its target and renamed into place, so an interrupted export leaves nothing; it holds ``bvdm-pairs.json``
(format, source dataset, number of pairs), and ``overwrite`` replaces only a folder holding it (or an empty one).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from ..runtime.progress import CancelToken, Job, Progress
from .physical import resolution_tags
from .readers import find_ctc, read_ctc
from .video import InputError

__all__ = ["FORMATS", "export_training_pairs", "MARKER", "check_target", "staged_folder"]

#: written into every pairs folder: what it was made from (a folder holding it may be replaced by a new export)
MARKER = "bvdm-pairs.json"

#: format name -> what it is, for help texts
FORMATS = {"cellpose": "NAME.tif + NAME_masks.tif in one folder (Cellpose training)",
           "stardist": "images/NAME.tif + masks/NAME.tif (StarDist training)"}


def _paths(fmt: str, root: Path, name: str) -> tuple[Path, Path]:
    if fmt == "cellpose":
        return root / f"{name}.tif", root / f"{name}_masks.tif"
    return root / "images" / f"{name}.tif", root / "masks" / f"{name}.tif"


def _sequences(dataset: Path) -> list[str]:
    lay = find_ctc(dataset)
    if lay is None:
        raise InputError(f"{dataset} is not a CTC dataset or sequence (no NN / NN_GT folders)")
    return [lay.sequence, *lay.other_sequences]


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse an export folder that exists (without ``overwrite``), one holding files napari-bvdm did not write
    (no :data:`MARKER`), or a file."""
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; choose another folder, or replace it with --overwrite")
    if out.is_dir() and overwrite and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InputError(f"{out} holds files napari-bvdm did not write (no {MARKER}); it is left as it is: "
                         "choose another folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder; choose another folder")


@contextlib.contextmanager
def staged_folder(out: Path, kind: str, marker: dict):
    """A temporary folder beside ``out`` to write into; on success it gets :data:`MARKER` (``marker`` as JSON)
    and replaces ``out``; on any failure it is removed and ``out`` stays as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.bvdm-{kind}-", dir=out.parent))
    try:
        yield tmp
        (tmp / MARKER).write_text(json.dumps(marker, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def export_training_pairs(dataset: str | Path, out: str | Path, fmt: str, *, overwrite: bool = False,
                          cancel: CancelToken | None = None) -> Job[Path]:
    """Job: write the image/mask pairs of every sequence of ``dataset`` into ``out``; returns ``out``.

    Raises
    ------
    InputError
        An unknown format, a dataset without full masks (SEG), or ``out`` existing without ``overwrite``.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    dataset, out = Path(dataset), Path(out)
    check_target(out, overwrite)
    videos = [read_ctc(dataset, lazy=True, sequence=seq) for seq in _sequences(dataset)]
    jobs = [(v, t) for v in videos if "SEG" in v.labels for t in v.seg_frames]
    if not jobs:
        raise InputError(f"{dataset} has no full masks (no {videos[0].meta.get('sequence', 'NN')}_GT/SEG "
                         "frames): a segmenter trains on full masks; TRA markers are not enough")
    marker = {"format": fmt, "dataset": str(dataset.resolve()), "pairs": len(jobs)}
    with staged_folder(out, "pairs", marker) as tmp:
        if fmt == "stardist":
            (tmp / "images").mkdir()
            (tmp / "masks").mkdir()
        for i, (video, t) in enumerate(jobs):
            if cancel is not None:
                cancel.check()
            name = f"{video.meta.get('sequence', '01')}_t{t:03d}"
            image = np.asarray(video.image[t])
            mask = np.asarray(video.labels["SEG"][t])
            mask = mask.astype(np.uint16 if mask.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32)
            img_path, mask_path = _paths(fmt, tmp, name)
            tags = resolution_tags((video.meta or {}).get("pixel_size"))
            tifffile.imwrite(img_path, image, **tags)
            tifffile.imwrite(mask_path, mask, **tags)
            yield Progress(i + 1, len(jobs), f"{fmt}: {name}", stage="export")
    return out
