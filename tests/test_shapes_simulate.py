"""Mask simulation: valid CTC by construction, divisions, seeds, streaming, comparison, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from napari_bvdm.io.validator import check_lineage
from napari_bvdm.runtime.config import ConfigError
from napari_bvdm.runtime.progress import Cancelled, CancelToken, run_job
from napari_bvdm.shapes import MaskVideo, ShapeModel, SimulationConfig, compare, simulate_masks


@pytest.fixture(scope="module")
def model() -> ShapeModel:
    return ShapeModel.default()


def _sim(model, **kw) -> MaskVideo:
    cfg = SimulationConfig(**{"frames": 20, "height": 256, "width": 256, "cells": 8, "seed": 3, **kw})
    return run_job(simulate_masks(model, cfg))


def _spans(labels):
    spans: dict[int, list[int]] = {}
    for t, f in enumerate(labels):
        for lab in np.unique(f):
            if lab:
                spans.setdefault(int(lab), []).append(t)
    return spans


def test_valid_ctc_by_construction_with_divisions(model):
    sim = _sim(model, division_rate=0.08, frames=25)
    lab, lin = sim.labels, sim.lineage
    assert lab.dtype == np.uint16 and lab.shape == (25, 256, 256)
    assert lin.dtype == np.int64 and lin.shape[1] == 4
    per_frame = [np.unique(f[f > 0]) for f in lab]
    assert check_lineage(lin, per_frame, n_frames=25) == []
    spans = _spans(lab)
    rows = {int(r[0]): r for r in lin}
    assert set(spans) == set(rows)
    for lab_id, frames in spans.items():  # visible in every frame of its span, nowhere else
        _, b, e, _ = rows[lab_id]
        assert frames == list(range(b, e + 1))
        assert len(sim.brightness[lab_id]) == len(frames) == len(sim.stage[lab_id]) == len(sim.centroids[lab_id])
    kids = lin[lin[:, 3] > 0]
    assert len(kids) >= 2, "division_rate 0.08 must give divisions"
    ratios = []
    for lab_id, b, _e, p in kids:
        assert b == rows[int(p)][2] + 1  # daughters start at mother's E + 1
        assert sim.stage[int(lab_id)][0] == 5  # telophase right after the division
        assert sim.stage[int(p)][-1] == 3  # mitotic before it
        # daughters take a share of the mother's area (0.81 in GOWT1; clipping by neighbours aside)
        ratios.append((lab[b] == lab_id).sum() / (lab[rows[int(p)][2]] == p).sum())
    assert np.median(ratios) < 1
    assert sim.stats["divisions"] == len({int(p) for p in kids[:, 3]})
    data, graph = sim.tracks_layer_data()
    assert data.shape[1] == 4 and len(data) == sum(len(v) for v in spans.values())
    assert all(graph[int(k)] == [int(p)] for k, _b, _e, p in kids)
    assert all(np.all(np.isfinite(v)) and np.all(v > 0) for v in sim.brightness.values())


def test_same_seed_same_video_other_seed_differs(model):
    a, b, c = _sim(model, seed=11), _sim(model, seed=11), _sim(model, seed=12)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.lineage, b.lineage)
    assert all(np.array_equal(a.brightness[k], b.brightness[k]) for k in a.brightness)
    assert not np.array_equal(a.labels, c.labels)


def test_streaming_sink_gives_the_same_frames(model):
    full = _sim(model, frames=12)
    got = {}
    streamed = run_job(simulate_masks(model, full.config, sink=lambda t, f: got.__setitem__(t, f.copy())))
    assert streamed.labels is None and sorted(got) == list(range(12))
    np.testing.assert_array_equal(np.stack([got[t] for t in range(12)]), full.labels)
    np.testing.assert_array_equal(streamed.lineage, full.lineage)


def test_frames_made_again_when_read_are_the_same(model):
    """keep_frames=False keeps no frame: each is made again when read, in any order, and equals the kept one."""
    from napari_bvdm.shapes.simulate import SimulatedLabels

    full = _sim(model, frames=12)
    lazy = run_job(simulate_masks(model, full.config, keep_frames=False))
    assert isinstance(lazy.labels, SimulatedLabels) and lazy.labels.shape == full.labels.shape
    assert lazy.labels.dtype == np.uint16 and len(lazy.labels) == 12
    np.testing.assert_array_equal(lazy.lineage, full.lineage)
    for t in (0, 5, 6, 2, 11, -1):  # forwards, backwards (a new simulation), the last
        np.testing.assert_array_equal(lazy.labels[t], full.labels[t])
    np.testing.assert_array_equal(lazy.labels[3, 10:20], full.labels[3, 10:20])
    np.testing.assert_array_equal(np.asarray(lazy.labels), full.labels)
    np.testing.assert_array_equal(lazy.labels[2:4], full.labels[2:4])
    with pytest.raises(IndexError, match="frame 12 of a 12-frame video"):
        lazy.labels[12]


def test_border_entry_and_exit_and_density(model):
    sim = _sim(model, frames=40, cells=10, motion_scale=4.0, seed=5)
    lin = sim.lineage
    entered = lin[(lin[:, 1] > 0) & (lin[:, 3] == 0)]
    left = lin[(lin[:, 2] < 39)]
    assert len(entered) > 0 and len(left) > 0
    for lab_id, b, _e, _p in entered[:5]:  # entering cells appear at the border
        ys, xs = np.nonzero(sim.labels[b] == lab_id)
        assert min(ys.min(), xs.min()) == 0 or ys.max() == 255 or xs.max() == 255
    counts = [len(np.unique(f)) - 1 for f in sim.labels]
    assert 6 <= np.mean(counts) <= 14


def test_no_divisions_when_switched_off_or_absent(model):
    sim = _sim(model, divisions=False, division_rate=0.2)
    assert (sim.lineage[:, 3] == 0).all()
    sim = _sim(model, division_rate=0.0)
    assert (sim.lineage[:, 3] == 0).all()


def test_bad_config_and_cancel(model):
    with pytest.raises(ConfigError, match="frames"):
        SimulationConfig(frames=0)
    with pytest.raises(ConfigError, match="cells"):
        SimulationConfig.from_dict({"cells": -3})
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        run_job(simulate_masks(model, SimulationConfig(frames=5, height=64, width=64), cancel=tok))


def test_compare_report_table_and_figure(model):
    a = _sim(model, seed=1, frames=10)
    same = compare(a, a)
    assert same.max_ks == 0.0
    b = _sim(model, seed=2, frames=10, motion_scale=5.0)
    rep = compare(a, b)
    assert rep.ks("step") > 0.4  # 5x faster cells are told apart (both pause in ~17 % of the frames)
    assert [r["feature"] for r in rep.rows][:5] == ["area", "eccentricity", "solidity", "step", "cells_per_frame"]
    t = rep.table()
    assert t.startswith("| feature |") and "cells_per_frame" in t
    fig = rep.figure()
    assert len(fig.axes) == 6


def test_simulated_matches_real_gowt1_shapes(gowt1, model):
    """The bundled model (fitted on GOWT1) gives GOWT1-like objects on a GOWT1-sized crop."""
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.shapes.compare import population_features

    v = read_video(gowt1 / "01", lazy=True)
    seg = [np.asarray(v.labels["SEG"][t]) for t in v.seg_frames]  # the objects the model was fitted on
    real = population_features(np.stack(seg))
    feats: dict[str, list] = {}
    for seed in range(6):  # many independent cells: short videos with several seeds
        sim = run_job(simulate_masks(model, SimulationConfig(frames=2, height=1024, width=1024, seed=seed)))
        for k, v in population_features(sim.labels).items():
            feats.setdefault(k, []).extend(v)
    rep = compare(real, {k: np.asarray(v) for k, v in feats.items()})
    # a sanity check on short videos (GOWT1 SEG: 142 objects, most of them the same few nuclei);
    # the full-length KS figures are in benchmarks/bench_shapes.py and docs/shapes.md
    for name in ("area", "eccentricity", "solidity"):
        assert rep.ks(name) < 0.3, rep.table()
        r = next(r for r in rep.rows if r["feature"] == name)
        assert abs(r["median_sim"] / r["median_real"] - 1) < 0.1


def test_cli_fit_and_simulate_writes_valid_ctc(simplus, tmp_path):
    import tifffile

    from napari_bvdm.cli import main
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.io.validator import validate_ctc

    # a small label-only copy of SIM+ (8 frames, in the test's temp folder)
    v = read_video(simplus / "01", lazy=True)
    src = tmp_path / "labels.tif"
    tifffile.imwrite(src, np.stack([np.asarray(v.labels["TRA"][t]) for t in range(8)]))
    out = tmp_path / "model.json"
    assert main(["fit-shapes", str(src), "-o", str(out), "--variance-share", "0.95", "--quiet"]) == 0
    m = ShapeModel.load(out)
    assert m.source["n_frames"] == 8
    ds = tmp_path / "Sim"
    assert main(["simulate-masks", str(out), "-o", str(ds), "--frames", "12", "--size", "96", "128",
                 "--seed", "4", "--quiet"]) == 0
    assert validate_ctc(ds / "01_GT", n_frames=12) == []
    assert len(list((ds / "01_GT" / "TRA").glob("man_track*.tif"))) == 12
    # a second run without --overwrite refuses and leaves the first intact
    assert main(["simulate-masks", str(out), "-o", str(ds), "--frames", "12", "--size", "96", "128"]) == 2
    assert validate_ctc(ds / "01_GT", n_frames=12) == []
    assert main(["simulate-masks", str(tmp_path / "missing.json"), "-o", str(tmp_path / "x")]) == 2
    # --density-scale reaches the simulation (recorded with the masks); with --cells it is a clear error
    assert main(["simulate-masks", str(out), "-o", str(tmp_path / "Dense"), "--frames", "2", "--size", "96", "128",
                 "--density-scale", "2", "--quiet"]) == 0
    import json

    attrs = json.loads((tmp_path / "Dense" / "01_GT" / "cell_attributes.json").read_text())
    assert attrs["config"]["density_scale"] == 2.0
    assert main(["simulate-masks", str(out), "-o", str(tmp_path / "D2"), "--cells", "3", "--density-scale", "2"]) == 2


def test_py_ctcmetrics_accepts_the_export(tmp_path, model):
    ctc = pytest.importorskip("ctc_metrics")
    import shutil

    from napari_bvdm.cli import main

    ds = tmp_path / "Sim"
    assert main(["simulate-masks", "default", "-o", str(ds), "--frames", "8", "--size", "96", "96",
                 "--cells", "3", "--quiet"]) == 0
    res = tmp_path / "01_RES"
    res.mkdir()
    for f in sorted((ds / "01_GT" / "TRA").glob("man_track*.tif")):
        shutil.copy(f, res / f.name.replace("man_track", "mask"))
    shutil.copy(ds / "01_GT" / "TRA" / "man_track.txt", res / "res_track.txt")
    assert ctc.validate_sequence(str(res), threads=1)["Valid"] == 1


def test_pause_probability_freezes_cells(model):
    """A fitted pause probability (GOWT1's markers: steps of exactly 0) gives that share of frozen frames."""
    import copy

    m = copy.deepcopy(model)
    m.params["motion"]["pause_probability"] = 0.3
    sim = run_job(simulate_masks(m, SimulationConfig(frames=30, height=256, width=256, cells=6, seed=1)))
    steps = np.concatenate([np.hypot(*np.diff(np.asarray(c), axis=0).T) for c in sim.centroids.values()
                            if len(c) > 1])
    zero = float(np.mean(steps < 1e-6))
    assert 0.15 < zero < 0.4, zero
    m.params["motion"]["pause_probability"] = 0.0
    sim = run_job(simulate_masks(m, SimulationConfig(frames=30, height=256, width=256, cells=6, seed=1)))
    steps = np.concatenate([np.hypot(*np.diff(np.asarray(c), axis=0).T) for c in sim.centroids.values()
                            if len(c) > 1])
    assert float(np.mean(steps < 1e-6)) < 0.05


def test_density_control_holds_the_count_against_fast_divisions(model):
    """Divisions above the fitted density wait (contact inhibition) and border cells emigrate: the count
    follows the target instead of growing exponentially; without density control it grows."""
    sim = _sim(model, frames=40, cells=10, division_rate=0.08, seed=2)
    counts = np.array([len(np.unique(f)) - 1 for f in sim.labels])
    assert counts[20:].max() <= 14 and (sim.lineage[:, 3] > 0).any()
    free = _sim(model, frames=40, cells=10, division_rate=0.08, seed=2, density_control=False)
    counts_free = np.array([len(np.unique(f)) - 1 for f in free.labels])
    assert counts_free[-5:].mean() > counts[-5:].mean() + 5


def _largest_area_change(sim: MaskVideo) -> float:
    """Largest |log area ratio| of one cell between consecutive frames (cells off the border)."""
    worst = 0.0
    for t in range(len(sim.labels) - 1):
        a, b = sim.labels[t], sim.labels[t + 1]
        edge = np.zeros(a.shape, bool)
        edge[[0, -1], :] = edge[:, [0, -1]] = True
        na, nb = np.bincount(a.ravel()), np.bincount(b.ravel(), minlength=len(np.bincount(a.ravel())))
        for lab in np.intersect1d(np.unique(a[a > 0]), np.unique(b[b > 0])):
            if not (edge & ((a == lab) | (b == lab))).any():
                worst = max(worst, abs(float(np.log(nb[lab] / na[lab]))))
    return worst


def test_area_changes_at_most_the_fitted_step_per_frame(model):
    """GOWT1's area table has a steep stretch (3 % of nuclei at 600-800 px, the rest above 2000): without a
    limit a cell shrank to a third in one frame and grew back (seen as stretched textures in synthesis)."""
    import copy

    cap = model.params["area"]["max_log_step"]
    assert 0.05 < cap < 0.4
    sim = _sim(model, frames=30, cells=8, seed=0)
    assert _largest_area_change(sim) < cap + 0.1  # + rasterisation and neighbours' contact
    free = copy.deepcopy(model)
    free.params["area"]["max_log_step"] = 0.0  # old model files: no limit
    assert _largest_area_change(_sim(free, frames=30, cells=8, seed=0)) > 0.7


def test_real_outlines_need_a_model_that_kept_them(model):
    with pytest.raises(ConfigError, match="keep_outlines"):
        _sim(model, outlines="real")
    with pytest.raises(ConfigError, match="outlines"):
        SimulationConfig(outlines="spiky")


@pytest.mark.slow
def test_real_outlines_draw_msc_shapes(msc, tmp_path):
    """``outlines="real"``: valid CTC, seeded, and every whole cell is one of the stored real outlines."""
    import copy

    from skimage import measure

    from napari_bvdm.cli import main
    from napari_bvdm.io.validator import validate_ctc
    from napari_bvdm.shapes.contours import fill_polygon, outline_to_polygon

    out = tmp_path / "msc.json"
    settings = tmp_path / "fit.json"
    settings.write_text('{"fit_shapes": {"max_shape_frames": 8, "calibration_frames": 0}}')
    assert main(["fit-shapes", str(msc / "01"), "-o", str(out), "--keep-outlines", "50", "--quiet",
                 "--variance-share", "0.95", "--settings", str(settings)]) == 0
    m = ShapeModel.load(out)
    assert m.outlines is not None and len(m.outlines) >= 20

    def features(mask):  # rotation-, mirror- and size-invariant
        rp = measure.regionprops(mask.astype(np.uint8))[0]
        return np.array([rp.solidity, rp.eccentricity, rp.perimeter / np.sqrt(rp.area) / 10])

    def drawn(outline, area=3000.0):
        rr, cc = fill_polygon(*outline_to_polygon(outline, area, 0.3, (150.0, 150.0)), (300, 300))
        b = np.zeros((300, 300), bool)
        b[rr, cc] = True
        return b

    # a model that keeps one real outline, a bent one (solidity about 0.6): every whole cell must be it
    bank = np.array([features(drawn(o)) for o in m.outlines])
    pick = int(np.argmin(np.abs(bank[:, 0] - 0.6)))
    one = copy.deepcopy(m)
    one.params["outlines"]["polygons"] = m.outlines[pick:pick + 1]
    want = bank[pick]
    cfg = dict(frames=6, height=1200, width=1400, cells=8, seed=2, outlines="real", outline_wobble=0.0,
               border_entry=False)
    sim = _sim(one, **cfg)
    assert np.array_equal(sim.labels, _sim(one, **cfg).labels)  # seeded
    per_frame = [np.unique(f[f > 0]) for f in sim.labels]
    assert check_lineage(sim.lineage, per_frame, n_frames=6) == []

    def whole_cells(frame):
        h, w = frame.shape
        for lab in np.unique(frame[frame > 0]):
            rows, cols = np.nonzero(frame == lab)
            if rows.min() > 0 and cols.min() > 0 and rows.max() < h - 1 and cols.max() < w - 1:
                yield frame == lab

    def max_gap(video):
        return [float(np.abs(features(c) - want).max()) for c in whole_cells(video.labels[0])]

    real_gap = max_gap(sim)
    model_gap = max_gap(_sim(one, **{**cfg, "outlines": "model"}))
    assert len(real_gap) >= 4 and np.median(real_gap) < 0.03, real_gap
    assert np.median(model_gap) > 2 * np.median(real_gap), (model_gap, real_gap)
    # with a wobble the outline changes smoothly over time but stays that cell's outline
    wob = _sim(one, **{**cfg, "outline_wobble": 0.1})
    assert not np.array_equal(wob.labels[3] > 0, sim.labels[3] > 0)
    assert np.median(max_gap(wob)) < 0.1
    ds = tmp_path / "Real"
    assert main(["simulate-masks", str(out), "-o", str(ds), "--frames", "5", "--size", "300", "300",
                 "--outlines", "real", "--quiet"]) == 0
    assert validate_ctc(ds / "01_GT", n_frames=5) == []


def _touching_share(labels: np.ndarray) -> float:
    from scipy import ndimage as ndi

    n = touching = 0
    for lab in labels:
        for i in np.unique(lab)[1:]:
            m = lab == i
            ring = ndi.binary_dilation(m, iterations=2) & ~m
            n += 1
            touching += bool((ring & (lab > 0) & (lab != i)).any())
    return touching / max(n, 1)


def test_density_scale_crowds_the_population(model):
    base = SimulationConfig(frames=6, height=768, width=768, seed=4)
    one = run_job(simulate_masks(model, base))
    two = run_job(simulate_masks(model, base.replace(density_scale=4.0)))
    n1 = np.mean([len(np.unique(f)) - 1 for f in one.labels])
    n2 = np.mean([len(np.unique(f)) - 1 for f in two.labels])
    assert 3.2 <= n2 / n1 <= 4.8
    assert _touching_share(two.labels) > _touching_share(one.labels)
    with pytest.raises(ConfigError, match="not both"):
        SimulationConfig(cells=5, density_scale=2.0)
    with pytest.raises(ConfigError, match="density_scale"):
        SimulationConfig(density_scale=0)


@pytest.mark.slow
def test_brightness_follows_size_as_in_the_real_cells(msc):
    """MSC's larger (spread) cells are dimmer: the fit keeps the normal-score correlation of size and brightness
    and the simulation reproduces it, with both marginals kept; switched off (or a model fitted before it
    existed) the two are independent."""
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.shapes.fit import fit_shape_model, normal_scores
    from napari_bvdm.shapes.model import FitConfig

    video = read_video(msc / "01", check=False)
    m = run_job(fit_shape_model(video, FitConfig(max_shape_frames=8, calibration_frames=0)))
    rho = m.params["brightness"]["area_corr"]
    assert -0.7 < rho < -0.2  # MSC 01, all frames: -0.40
    assert "rank correlation with the cell's size" in m.summary()

    def score_corr(**kw):  # each track's first frame: independent cells (a track's frames are not)
        areas, bright = [], []
        for seed in range(4):
            v = run_job(simulate_masks(m, SimulationConfig(frames=2, height=1024, width=1024, cells=40, seed=seed,
                                                           **kw)))
            for track, b in v.brightness.items():
                start = int(v.lineage[v.lineage[:, 0] == track][0, 1])
                areas.append(int((v.labels[start] == track).sum()))
                bright.append(float(b[0]))
        areas, bright = np.asarray(areas, float), np.asarray(bright)
        return np.corrcoef(normal_scores(areas), normal_scores(bright))[0, 1], bright

    coupled, b1 = score_corr()
    independent, b0 = score_corr(brightness_follows_size=False)
    assert abs(coupled - rho) < 0.15 and abs(independent) < 0.15, (coupled, independent, rho)  # -0.30 / 0.00
    assert abs(np.median(b1) / np.median(b0) - 1) < 0.1  # the brightness distribution itself is kept
    # a model file written without area_corr reads as independent
    d = m.to_dict()
    del d["params"]["brightness"]["area_corr"]
    assert ShapeModel.from_dict(d).params["brightness"]["area_corr"] == 0.0


@pytest.mark.slow
def test_fit_shapes_links_labels_numbered_frame_by_frame(simplus, tmp_path, capsys):
    """A segmenter's output (ids 1..N afresh in every frame) is linked by position, not taken as tracks:
    the fitted cell speeds match those fitted on the real tracks."""
    import tifffile

    from napari_bvdm.cli import main
    from napari_bvdm.io.readers import read_video
    from test_io_linking import renumber_per_frame

    v = read_video(simplus / "01", lazy=True)
    tracked = np.stack([np.asarray(v.labels["TRA"][t]) for t in range(20)])
    settings = tmp_path / "s.json"
    settings.write_text('{"fit_shapes": {"max_shape_frames": 4, "calibration_frames": 0}}')
    steps = {}
    for name, labels in (("tracked", tracked), ("per_frame", renumber_per_frame(tracked))):
        src = tmp_path / f"{name}.tif"
        tifffile.imwrite(src, labels)
        out = tmp_path / f"{name}.json"
        assert main(["fit-shapes", str(src), "-o", str(out), "--settings", str(settings), "--quiet"]) == 0
        m = ShapeModel.load(out)
        steps[name] = float(np.median(m.params["motion"]["step_quantiles"]))
        printed = capsys.readouterr().out
        assert m.source["linked"] == (name == "tracked")
        assert ("numbered frame by frame" in printed) == (name == "per_frame")
    assert abs(steps["per_frame"] / steps["tracked"] - 1) < 0.1, steps


def test_fit_shapes_output_is_checked_before_fitting(simplus, tmp_path, capsys):
    from napari_bvdm.cli import main

    src = simplus / "01"
    assert main(["fit-shapes", str(src), "-o", str(tmp_path), "--quiet"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["fit-shapes", str(src), "-o", str(tmp_path / "model.tif"), "--quiet"]) == 2
    mine = tmp_path / "mine.json"
    mine.write_text("{}")
    assert main(["fit-shapes", str(src), "-o", str(mine), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err and mine.read_text() == "{}"
