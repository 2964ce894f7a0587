"""A CTC dataset as OME-Zarr (NGFF), with its lineage as a GEFF graph and as tables trackers read.

Per sequence ``NN``: ``DIR/NN.ome.zarr`` holds the image (axes t, y, x; the pixel size in micrometres where it
is known), NGFF labels ``tracks`` (the TRA track ids of every frame) and, where every frame has full masks,
``segmentation`` (SEG), and ``tracks.geff``: the lineage as a GEFF graph (one node per cell and frame with
``t``, ``y``, ``x`` in pixels, ``track_id``, ``lineage_id`` and ``seg_id``, the cell's value in
``labels/tracks``; an edge from each cell to itself in the next frame and from a mother's last frame to
each daughter's first), which trackastra, traccuracy and motile read with the ``geff`` library.
``DIR/NN_lineage.csv`` lists ``track_id,begin,end,parent`` (the CTC ``man_track.txt`` with a header) and
``DIR/NN_tracks.csv`` ``track_id,t,y,x`` (the napari Tracks layout) for pandas users. The time axis counts
frames: CTC data carry no frame interval. Written with the ``ome-zarr`` and ``geff`` libraries
(``pip install "napari-bvdm[ome-zarr]"``), beside the target and renamed into place.
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
        import geff  # noqa: F401
        import zarr
        from ome_zarr.writer import write_image, write_labels
    except ImportError as e:
        raise InputError(f"the ome-zarr export needs the {e.name or 'ome-zarr'} library: "
                         "pip install \"napari-bvdm[ome-zarr]\"") from None
    return zarr, write_image, write_labels


def _centroids(labels: np.ndarray) -> list[tuple[int, int, float, float]]:
    """``(track_id, t, y, x)`` of every cell in every frame, centroids in pixels."""
    from scipy import ndimage

    out = []
    for t, frame in enumerate(labels):
        ids = np.unique(frame)
        ids = ids[ids > 0]
        for i, (y, x) in zip(ids, ndimage.center_of_mass(np.ones_like(frame), frame, ids), strict=True):
            out.append((int(i), t, float(y), float(x)))
    return out


def _tables(tmp: Path, seq: str, cells: list[tuple[int, int, float, float]], lineage: np.ndarray) -> None:
    rows = "\n".join(f"{int(a)},{int(b)},{int(e)},{int(p)}" for a, b, e, p in np.asarray(lineage).reshape(-1, 4))
    (tmp / f"{seq}_lineage.csv").write_text("track_id,begin,end,parent\n" + rows + "\n")
    lines = "\n".join(f"{i},{t},{y:.3f},{x:.3f}" for i, t, y, x in cells)
    (tmp / f"{seq}_tracks.csv").write_text("track_id,t,y,x\n" + lines + "\n")


def _geff(group: Path, cells: list[tuple[int, int, float, float]], lineage: np.ndarray,
          pixel_size: float | None) -> None:
    """The lineage as a GEFF graph in ``group`` (a sibling of the OME-Zarr's ``labels``)."""
    import geff
    import networkx as nx
    from geff_spec import GeffMetadata, RelatedObject

    parent = {int(a): int(p) for a, _b, _e, p in np.asarray(lineage).reshape(-1, 4)}

    def root(track: int) -> int:
        seen = set()
        while parent.get(track, 0) and track not in seen:
            seen.add(track)
            track = parent[track]
        return track

    graph = nx.DiGraph()
    node, first, last, lineage_id = {}, {}, {}, {}
    for n, (i, t, y, x) in enumerate(cells):  # frame by frame (see _centroids)
        if i not in lineage_id:
            lineage_id[i] = root(i)
        graph.add_node(n, t=t, y=y, x=x, track_id=i, lineage_id=lineage_id[i], seg_id=i)
        if (i, t - 1) in node:
            graph.add_edge(node[(i, t - 1)], n)
        node[(i, t)] = n
        first.setdefault(i, n)
        last[i] = n
    for child, mother in parent.items():
        if mother and child in first and mother in last:
            graph.add_edge(last[mother], first[child])
    unit = "micrometer" if pixel_size else None
    scale = float(pixel_size) if pixel_size else None
    geff.write(graph, str(group), axis_names=["t", "y", "x"], axis_types=["time", "space", "space"],
               axis_units=[None, "pixel", "pixel"], axis_scales=[None, scale, scale],
               scaled_units=[None, unit, unit], zarr_format=3)
    meta = GeffMetadata.read(str(group))
    meta.track_node_props = {"tracklet": "track_id", "lineage": "lineage_id"}
    meta.related_objects = [RelatedObject(type="labels", path="../labels/tracks", node_prop="seg_id")]
    meta.write(str(group))


def export_ome_zarr(dataset: str | Path, out: str | Path, *, overwrite: bool = False,
                    cancel: CancelToken | None = None) -> Job[Path]:
    """Job: every sequence of ``dataset`` as ``out/NN.ome.zarr`` (with its GEFF lineage) plus its lineage tables;
    returns ``out``."""
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
                lineage = video.lineage if video.lineage is not None else np.zeros((0, 4), int)
                cells = _centroids(tra)
                _tables(tmp, seq, cells, lineage)
                _geff(tmp / f"{seq}.ome.zarr" / "tracks.geff", cells, lineage, px)
            if "SEG" in video.labels and len(video.seg_frames) == video.n_frames:
                write_labels(np.asarray(video.labels["SEG"]).astype(np.uint32), root, name="segmentation",
                             scaler=None, **kw)
            yield Progress(i + 1, len(seqs), f"ome-zarr: {seq}", stage="export")
    return out
