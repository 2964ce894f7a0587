"""`bvdm export --to cellpose|stardist`: one image/mask pair per frame with full masks, in each tool's layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tifffile

from napari_bvdm.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    cfg = root / "c.json"
    cfg.write_text(json.dumps({"seed": 2, "shapes": {"frames": 3, "height": 48, "width": 64, "cells": 2},
                               "texture": {"model": "classical"}, "output": {"videos": 2}}))
    assert main(["generate", "--config", str(cfg), "-o", str(root / "ds"), "--quiet"]) == 0
    return root / "ds"


def test_cellpose_layout_pairs_every_frame_with_its_masks(dataset, tmp_path, capsys):
    out = tmp_path / "cellpose"
    assert main(["export", str(dataset), "--to", "cellpose", "-o", str(out), "--quiet"]) == 0
    assert "wrote 6 image/mask pairs for cellpose" in capsys.readouterr().out
    images = sorted(p for p in out.glob("*.tif") if not p.stem.endswith("_masks"))
    assert [p.stem for p in images] == [f"{s}_t{t:03d}" for s in ("01", "02") for t in range(3)]
    for img in images:  # Cellpose's convention: NAME.tif beside NAME_masks.tif
        seq, t = img.stem.split("_t")
        masks = tifffile.imread(img.with_name(img.stem + "_masks.tif"))
        np.testing.assert_array_equal(tifffile.imread(img), tifffile.imread(dataset / seq / f"t{t}.tif"))
        np.testing.assert_array_equal(masks, tifffile.imread(dataset / f"{seq}_GT" / "SEG" / f"man_seg{t}.tif"))
        assert masks.dtype == np.uint16 and masks.max() > 0


def test_cellpose_reads_the_pairs_for_training(dataset, tmp_path):
    """Cellpose's own loader (``cellpose.io.load_train_test_data``, what ``python -m cellpose --train --dir``
    uses) finds every image with its masks."""
    pytest.importorskip("cellpose", reason='Cellpose is not installed (pip install "napari-bvdm[cellpose]")')
    from cellpose import io as cp_io

    out = tmp_path / "cellpose"
    assert main(["export", str(dataset), "--to", "cellpose", "-o", str(out), "--quiet"]) == 0
    images, labels, names = cp_io.load_train_test_data(str(out), mask_filter="_masks")[:3]
    assert len(images) == len(labels) == 6 and sorted(names) == sorted(str(p) for p in out.glob("*_t???.tif"))
    for img, lab, name in zip(images, labels, names, strict=True):
        np.testing.assert_array_equal(img, tifffile.imread(name))
        assert lab.shape == img.shape[-2:] and lab.max() > 0


def test_stardist_layout_has_matching_names(dataset, tmp_path):
    out = tmp_path / "stardist"
    assert main(["export", str(dataset), "--to", "stardist", "-o", str(out), "--quiet"]) == 0
    images = sorted(p.name for p in (out / "images").glob("*.tif"))
    assert images == sorted(p.name for p in (out / "masks").glob("*.tif")) and len(images) == 6


def test_a_real_sequence_exports_its_annotated_frames_with_the_pixel_size(gowt1, tmp_path):
    from napari_bvdm.io.physical import read_physical

    out = tmp_path / "g"
    assert main(["export", str(gowt1), "--to", "cellpose", "-o", str(out), "--quiet"]) == 0
    masks = sorted(out.glob("*_masks.tif"))
    assert len(masks) == len(list((gowt1 / "01_GT" / "SEG").glob("man_seg*.tif")))
    px = read_physical(out / masks[0].name.replace("_masks", ""))
    assert px and abs(px.get("pixel_size", 0) - 0.2405) < 1e-3


def test_refusals_leave_everything_as_it_was(dataset, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["export", str(dataset), "--to", "cellpose", "-o", str(out), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err and (out / "keep.txt").read_text() == "x"
    no_seg = tmp_path / "noseg"
    shutil.copytree(dataset, no_seg)
    for seq in ("01", "02"):
        shutil.rmtree(no_seg / f"{seq}_GT" / "SEG")
    assert main(["export", str(no_seg), "--to", "stardist", "-o", str(tmp_path / "s"), "--quiet"]) == 2
    assert "no full masks" in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert not [p for p in tmp_path.iterdir() if "bvdm-pairs" in p.name]
    assert main(["export", str(tmp_path / "nothing"), "--to", "stardist", "-o", str(tmp_path / "s")]) == 2


def test_overwrite_replaces_only_a_pairs_folder(dataset, tmp_path, capsys):
    out = tmp_path / "cp"
    assert main(["export", str(dataset), "--to", "cellpose", "-o", str(out), "--quiet"]) == 0
    assert json.loads((out / "bvdm-pairs.json").read_text())["pairs"] == 6
    assert main(["export", str(dataset), "--to", "stardist", "-o", str(out), "--overwrite", "--quiet"]) == 0
    assert (out / "images").is_dir() and not list(out.glob("*_masks.tif"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    assert main(["export", str(dataset), "--to", "cellpose", "-o", str(mine), "--overwrite", "--quiet"]) == 2
    assert "did not write" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "x"


@pytest.mark.slow
def test_ome_zarr_reads_back_with_the_ome_zarr_library(dataset, tmp_path, gowt1):
    ome_zarr = pytest.importorskip("ome_zarr", reason="pip install ome-zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    out = tmp_path / "oz"
    assert main(["export", str(dataset), "--to", "ome-zarr", "-o", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.ome.zarr")) == ["01.ome.zarr", "02.ome.zarr"]
    nodes = list(Reader(parse_url(str(out / "01.ome.zarr")))())
    image = next(n for n in nodes if n.metadata.get("name") == "image")
    names = {n.metadata.get("name") for n in nodes}
    assert {"tracks", "segmentation"} <= names, names
    np.testing.assert_array_equal(np.asarray(image.data[0][1]), tifffile.imread(dataset / "01" / "t001.tif"))
    tracks = next(n for n in nodes if n.metadata.get("name") == "tracks")
    np.testing.assert_array_equal(np.asarray(tracks.data[0][2]),
                                  tifffile.imread(dataset / "01_GT" / "TRA" / "man_track002.tif"))
    lineage = np.loadtxt(out / "01_lineage.csv", delimiter=",", skiprows=1, ndmin=2)
    truth = np.loadtxt(dataset / "01_GT" / "TRA" / "man_track.txt", ndmin=2)
    np.testing.assert_array_equal(lineage, truth)
    table = np.loadtxt(out / "01_tracks.csv", delimiter=",", skiprows=1, ndmin=2)
    assert set(table[:, 0].astype(int)) == set(truth[:, 0].astype(int)) and ome_zarr is not None
    _check_geff(out / "01.ome.zarr" / "tracks.geff", truth, len(table))
    # a real sequence keeps its pixel size (GOWT1: 0.2405 um)
    real = tmp_path / "real"
    assert main(["export", str(gowt1), "--to", "ome-zarr", "-o", str(real), "--quiet"]) == 0
    node = next(n for n in Reader(parse_url(str(real / "01.ome.zarr")))() if n.metadata.get("name") == "image")
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale[0] == 1.0 and abs(scale[1] - 0.2405) < 1e-6 and abs(scale[2] - 0.2405) < 1e-6
    axes = node.metadata["axes"]
    assert [a["name"] for a in axes] == ["t", "y", "x"] and axes[1].get("unit") == "micrometer"
    _, meta = _check_geff(real / "01.ome.zarr" / "tracks.geff",
                          np.loadtxt(gowt1 / "01_GT" / "TRA" / "man_track.txt", ndmin=2))
    assert [(a.name, a.type, a.scaled_unit) for a in meta.axes] == [
        ("t", "time", None), ("y", "space", "micrometer"), ("x", "space", "micrometer")]
    assert abs(meta.axes[1].scale - 0.2405) < 1e-6


def _check_geff(path, truth: np.ndarray, n_nodes: int | None = None):
    """The GEFF graph read back with the geff library holds the CTC lineage: each track a chain of nodes over
    its frames, each daughter linked from its mother's last node."""
    geff = pytest.importorskip("geff", reason="pip install geff")
    graph, meta = geff.read(str(path))
    assert meta.track_node_props == {"tracklet": "track_id", "lineage": "lineage_id"}
    assert [(r.type, r.path, r.node_prop) for r in meta.related_objects] == [("labels", "../labels/tracks", "seg_id")]
    if n_nodes is not None:
        assert graph.number_of_nodes() == n_nodes
    nodes = graph.nodes
    by_track: dict[int, list[int]] = {}
    for n in nodes:
        by_track.setdefault(int(nodes[n]["track_id"]), []).append(int(nodes[n]["t"]))
    for lab, b, e, _p in truth.astype(int):
        assert sorted(by_track[lab]) == list(range(b, e + 1)), lab
    first = {int(nodes[n]["track_id"]): n for n in nodes if graph.in_degree(n) == 0
             or nodes[next(iter(graph.predecessors(n)))]["track_id"] != nodes[n]["track_id"]}
    for lab, _b, _e, p in truth.astype(int):
        preds = [int(nodes[m]["track_id"]) for m in graph.predecessors(first[lab])]
        assert preds == ([p] if p else []), (lab, preds)
        assert nodes[first[lab]]["lineage_id"] == (nodes[first[p]]["lineage_id"] if p else lab)
    within = sum(int(e - b) for _l, b, e, _p in truth.astype(int))
    assert graph.number_of_edges() == within + int((truth[:, 3] > 0).sum())
    return graph, meta
