"""A CTC dataset as OME-Zarr (NGFF), with its lineage as tables trackers read.

Per sequence ``NN``: ``DIR/NN.ome.zarr`` holds the image (axes t, y, x; the pixel size in micrometres where it
is known) and NGFF labels ``tracks`` (the TRA track ids of every frame) and, where every frame has full masks,
``segmentation`` (SEG); ``DIR/NN_lineage.csv`` lists ``track_id,begin,end,parent`` (the CTC ``man_track.txt``
with a header) and ``DIR/NN_tracks.csv`` ``track_id,t,y,x`` (centroids in pixels, the napari Tracks layout
that trackastra, traccuracy and motile users load with pandas). The time axis counts frames: CTC data carry no
frame interval. Written with the ``ome-zarr`` library (``pip install "napari-bvdm[ome-zarr]"``), beside the
target and renamed into place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..runtime.progress import CancelToken, Job, Progress
from .readers import read_ctc
from .training_pairs import _sequences, check_target, staged_folder
from .video import InputError

__all__ = ["export_ome_zarr"]


def _writer():
    try:
        import zarr
        from ome_zarr.writer import write_image, write_labels
    except ImportError:
        raise InputError("the ome-zarr export needs the ome-zarr library: pip install \"napari-bvdm[ome-zarr]\"") \
            from None
    return zarr, write_image, write_labels


def _tables(tmp: Path, seq: str, labels: np.ndarray, lineage: np.ndarray) -> None:
    from scipy import ndimage

    rows = "\n".join(f"{int(a)},{int(b)},{int(e)},{int(p)}" for a, b, e, p in np.asarray(lineage).reshape(-1, 4))
    (tmp / f"{seq}_lineage.csv").write_text("track_id,begin,end,parent\n" + rows + "\n")
    out = []
    for t, frame in enumerate(labels):
        ids = np.unique(frame)
        ids = ids[ids > 0]
        for i, (y, x) in zip(ids, ndimage.center_of_mass(np.ones_like(frame), frame, ids), strict=True):
            out.append(f"{int(i)},{t},{y:.3f},{x:.3f}")
    lines = "\n".join(out)
    (tmp / f"{seq}_tracks.csv").write_text("track_id,t,y,x\n" + lines + "\n")


def export_ome_zarr(dataset: str | Path, out: str | Path, *, overwrite: bool = False,
                    cancel: CancelToken | None = None) -> Job[Path]:
    """Job: every sequence of ``dataset`` as ``out/NN.ome.zarr`` plus its lineage tables; returns ``out``."""
    zarr, write_image, write_labels = _writer()
    dataset, out = Path(dataset), Path(out)
    check_target(out, overwrite)
    seqs = _sequences(dataset)
    marker = {"format": "ome-zarr", "dataset": str(dataset.resolve()), "sequences": seqs}
    with staged_folder(out, "zarr", marker) as tmp:
        for i, seq in enumerate(seqs):
            if cancel is not None:
                cancel.check()
            video = read_ctc(dataset, lazy=True, sequence=seq)
            image = np.asarray(video.image)
            px = (video.meta or {}).get("pixel_size")
            kw = {"scale_factors": [], "axes": "tyx"}
            if px:
                kw.update(scale={"t": 1.0, "y": float(px), "x": float(px)},
                          axes_units={"y": "micrometer", "x": "micrometer"})
            root = zarr.open_group(str(tmp / f"{seq}.ome.zarr"), mode="w")
            write_image(image, root, **kw)
            tra = video.labels.get("TRA")
            if tra is not None:
                tra = np.asarray(tra).astype(np.uint32)
                write_labels(tra, root, name="tracks", scaler=None, **kw)
                _tables(tmp, seq, tra, video.lineage if video.lineage is not None else np.zeros((0, 4), int))
            if "SEG" in video.labels and len(video.seg_frames) == video.n_frames:
                write_labels(np.asarray(video.labels["SEG"]).astype(np.uint32), root, name="segmentation",
                             scaler=None, **kw)
            yield Progress(i + 1, len(seqs), f"ome-zarr: {seq}", stage="export")
    return out
