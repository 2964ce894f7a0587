"""Shape model: fitting on real CTC labels, the model file, bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from napari_bvdm.io.video import InputError, Video
from napari_bvdm.runtime.progress import Cancelled, CancelToken, Progress, run_job
from napari_bvdm.shapes import FitConfig, ShapeModel, ShapeModelError, fit_shape_model
from napari_bvdm.shapes.contours import clean_labels, measure_frame, rasterise


def _read(path, frames=None):
    from napari_bvdm.io.readers import read_video

    v = read_video(path, lazy=True)
    if frames is not None:
        v = Video(image=np.asarray(v.image[:frames]), labels={k: np.asarray(a[:frames]) for k, a in v.labels.items()},
                  lineage=_cut_lineage(v.lineage, frames), seg_frames=[f for f in v.seg_frames if f < frames],
                  source=v.source)
    return v


def _cut_lineage(lin, frames):
    if lin is None:
        return None
    lin = lin[lin[:, 1] < frames].copy()
    lin[:, 2] = np.minimum(lin[:, 2], frames - 1)
    keep = set(lin[:, 0].tolist())
    lin[~np.isin(lin[:, 3], list(keep)), 3] = 0
    return lin


@pytest.fixture(scope="module")
def sim_model():
    from conftest import data_path

    v = _read(data_path("Fluo-N2DH-SIM+", "01"), frames=12)
    return v, run_job(fit_shape_model(v, FitConfig(variance_share=0.99, calibration_frames=4)))


def test_fit_simplus_recovers_real_statistics(sim_model):
    video, model = sim_model
    events = []
    cfg = FitConfig(max_shape_frames=2, variance_share=0.9, calibration_frames=0)
    run_job(fit_shape_model(video, cfg), events.append)
    assert all(isinstance(e, Progress) for e in events) and events[-1].step == events[-1].total
    # areas of whole objects, measured independently
    lab = video.labels["TRA"]
    areas = [r.area for t in range(12) for r in measure_frame(lab[t], t, with_radii=False) if not r.touches_border]
    q = model.params["area"]["quantiles"]
    assert 0.8 * np.median(areas) < q[50] < 1.3 * np.median(areas)
    assert model.n_modes >= 5 and float(np.sum(model.params["shape"]["explained"])) >= 0.99
    # the first modes (size/elongation) persist between frames; outline noise in high modes does not
    mode_rho = model.params["shape"]["mode_rho"]
    assert mode_rho[0] > 0.8 and mode_rho[:3].mean() > mode_rho[-10:].mean()
    assert 0.5 < model.params["area"]["rho"] < 1
    counts = [len(np.unique(f)) - 1 for f in lab]
    assert model.params["population"]["cells_mean"] == pytest.approx(np.mean(counts))
    lin = video.lineage
    n_parents = len({p for p in lin[:, 3] if p > 0})
    assert model.params["division"]["count"] == n_parents > 0
    assert model.params["division"]["rate"] == pytest.approx(n_parents / np.sum(counts))
    assert model.divisions_enabled
    s = model.summary()
    assert "divisions:" in s and "PCA modes" in s and "area (px)" in s
    assert model.normalisation is not None and model.params["background"]["noise"] > 0
    # the samplers were calibrated by simulation, the measured tables kept as they are
    mot = model.params["motion"]
    assert not np.array_equal(mot["sampler_step_quantiles"], mot["step_quantiles"])
    assert np.all(np.diff(mot["sampler_step_quantiles"]) >= 0)
    assert mot["pause_probability"] < 0.02  # SIM+ full masks always move a little: no pause model
    fig = model.figure()
    assert len(fig.axes) == 6


def test_contour_roundtrip_on_real_masks(gowt1):
    import tifffile

    lab = tifffile.imread(gowt1 / "01_GT" / "SEG" / "man_seg021.tif")
    recs = [r for r in measure_frame(lab, 21) if r.radii is not None]
    assert len(recs) > 10
    for r in recs[:10]:
        rr, cc = rasterise(r.radii, r.area, r.orientation, r.centroid, lab.shape)
        m = np.zeros(lab.shape, bool)
        m[rr, cc] = True
        truth = lab == r.label
        assert abs(int(m.sum()) - r.area) <= 0.02 * r.area
        # mirror-canonical outline: same area and extent, but compare with the mirror too
        iou = (m & truth).sum() / (m | truth).sum()
        assert iou > 0.85


def test_save_load_roundtrip_and_bad_files(sim_model, tmp_path):
    _, model = sim_model
    p = model.save(tmp_path / "m.json")
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask  # readable by others, like any saved file
    back = ShapeModel.load(p)
    assert back.summary() == model.summary()
    np.testing.assert_allclose(back.params["shape"]["components"], model.params["shape"]["components"])
    assert back.config == model.config

    data = json.loads(p.read_text())
    data["format_version"] = 99
    (tmp_path / "new.json").write_text(json.dumps(data))
    with pytest.raises(ShapeModelError, match="version 99"):
        ShapeModel.load(tmp_path / "new.json")

    data = json.loads(p.read_text())
    data["params"]["area"]["quantiles"][3] = 1e9  # hand edit: not monotonic
    (tmp_path / "edit.json").write_text(json.dumps(data))
    with pytest.raises(ShapeModelError, match=r"params\.area\.quantiles"):
        ShapeModel.load(tmp_path / "edit.json")

    data = json.loads(p.read_text())
    del data["params"]["motion"]["step_rho"]
    (tmp_path / "miss.json").write_text(json.dumps(data))
    with pytest.raises(ShapeModelError, match=r"params\.motion\.step_rho is missing"):
        ShapeModel.load(tmp_path / "miss.json")

    data = json.loads(p.read_text())  # a file written before the pause model: reads with pause 0
    del data["params"]["motion"]["pause_probability"], data["params"]["motion"]["moving_step_quantiles"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = ShapeModel.load(tmp_path / "old.json")
    assert old.params["motion"]["pause_probability"] == 0.0
    np.testing.assert_allclose(old.params["motion"]["moving_step_quantiles"], model.params["motion"]["step_quantiles"])

    data = json.loads(p.read_text())
    data["params"]["motion"]["pause_probability"] = 1.5
    (tmp_path / "prob.json").write_text(json.dumps(data))
    with pytest.raises(ShapeModelError, match=r"pause_probability = 1.5 must be a probability"):
        ShapeModel.load(tmp_path / "prob.json")

    (tmp_path / "trunc.json").write_text(p.read_text()[:200])
    with pytest.raises(ShapeModelError, match="not valid JSON"):
        ShapeModel.load(tmp_path / "trunc.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "napari-bvdm-weights"}))
    with pytest.raises(ShapeModelError, match="not a napari-bvdm shape model"):
        ShapeModel.load(tmp_path / "other.json")


def test_default_model_loads():
    m = ShapeModel.default()
    assert "Fluo-N2DH-GOWT1" in m.source["path"]
    assert m.n_points == FitConfig().n_points and m.n_modes > 0
    # GOWT1's hand-placed TRA markers stay exactly in place in about 17 % of the steps: a fitted pause
    assert 0.1 < m.params["motion"]["pause_probability"] < 0.25


def test_cancel_stops_the_fit(sim_model):
    video, _ = sim_model
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        run_job(fit_shape_model(video, cancel=tok))


def _disc(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_bad_input_single_object_and_border_only():
    lab = np.zeros((3, 64, 64), np.uint16)
    lab[0][_disc(64, 64, 30, 30, 8)] = 1
    with pytest.raises(InputError, match="at least 3"):
        run_job(fit_shape_model(Video(labels={"labels": lab})))
    border = np.zeros((3, 64, 64), np.uint16)
    for t in range(3):
        border[t][_disc(64, 64, 0, 20 + t, 8)] = 1
        border[t][_disc(64, 64, 63, 40, 6)] = 2
    with pytest.raises(InputError, match="touches the image border"):
        run_job(fit_shape_model(Video(labels={"labels": border})))
    with pytest.raises(InputError, match="no labels"):
        run_job(fit_shape_model(Video(image=np.zeros((3, 8, 8)))))


def test_holes_and_fragments_are_cleaned_and_reported():
    rng = np.random.default_rng(0)
    lab = np.zeros((6, 96, 96), np.uint16)
    for t in range(6):
        for i, (cy, cx) in enumerate([(25, 25), (25, 70), (70, 30), (70, 70)]):
            m = _disc(96, 96, cy + t, cx + rng.integers(-1, 2), 9 + i)
            lab[t][m] = i + 1
    lab[:, 25, 25] = 0  # a hole in label 1
    lab[:, 90:93, 5:8] = 2  # label 2 in two pieces
    cleaned, holes, frags = clean_labels(lab[0])
    assert holes == 1 and frags == 1 and cleaned[25, 25] == 1 and not (cleaned[90:93, 5:8] == 2).any()
    model = run_job(fit_shape_model(Video(labels={"labels": lab})))
    again = run_job(fit_shape_model(Video(labels={"labels": lab})))
    assert json.dumps(again.to_dict(), sort_keys=True) == json.dumps(model.to_dict(), sort_keys=True)  # deterministic
    assert model.source["labels_with_holes"] == 6 and model.source["fragmented_labels"] == 6
    assert model.source["linked"]  # ids persist at nearby positions
    assert not model.divisions_enabled and "divisions: off" in model.summary()
    assert model.params["division"]["rate"] == 0.0


def test_no_divisions_in_msc_means_divisions_off(msc):
    v = _read(msc / "01", frames=6)
    model = run_job(fit_shape_model(v, FitConfig(max_shape_frames=2, variance_share=0.95, calibration_frames=0)))
    assert not model.divisions_enabled and model.params["division"]["count"] == 0
    assert "divisions: off (none in the data)" in model.summary()


def test_unlinked_labels_are_matched_by_nearest_centroid(hela):
    from napari_bvdm.io.readers import read_video

    v = read_video(hela / "02", lazy=True)
    v = Video(image=np.asarray(v.image[:4]), labels={"ERR_SEG": np.asarray(v.labels["ERR_SEG"][:4])}, source=v.source)
    model = run_job(fit_shape_model(v, FitConfig(max_shape_frames=2, variance_share=0.95, calibration_frames=0)))
    assert model.source["track_kind"] == "ERR_SEG" and not model.source["linked"]
    # nuclei move a few pixels per frame: matched steps are short, not jumps between nuclei
    assert model.params["motion"]["step_quantiles"][50] < 10
    assert model.params["area"]["quantiles"][50] > 100


def _best_iou(lab, rec, xy):
    """IoU of an aligned outline drawn at the object's place with the object (best of the 4 canonical flips)."""
    from napari_bvdm.shapes.contours import fill_polygon, outline_to_polygon

    truth = lab == rec.label
    best = 0.0
    for sx in (1, -1):
        for sy in (1, -1):
            rr, cc = fill_polygon(*outline_to_polygon(xy * (sx, sy), rec.area, rec.orientation, rec.centroid),
                                  lab.shape)
            m = np.zeros(lab.shape, bool)
            m[rr, cc] = True
            best = max(best, float((m & truth).sum() / (m | truth).sum()))
    return best


def test_outline_descriptor_keeps_msc_protrusions(msc):
    """MSC's bent protrusions: a ray from the centroid meets them twice, so radii lose them; outlines do not."""
    import tifffile

    from napari_bvdm.shapes.contours import angles

    lab, _, _ = clean_labels(tifffile.imread(msc / "01_GT" / "SEG" / "man_seg005.tif"))
    recs = [r for r in measure_frame(lab, 5, outline_points=192) if r.outline is not None]
    assert len(recs) >= 5 and all(r.outline.shape == (192, 2) for r in recs)
    ol, rad = [], []
    for r in recs:
        a = angles(len(r.radii))
        ol.append(_best_iou(lab, r, r.outline))
        rad.append(_best_iou(lab, r, np.stack([r.radii * np.cos(a), r.radii * np.sin(a)], axis=1)))
    assert min(ol) > 0.95, ol  # every real outline is kept
    assert min(rad) < 0.85 and np.mean(ol) > np.mean(rad) + 0.05, (ol, rad)
    assert measure_frame(lab, 5)[0].outline is None  # only when asked for


def test_kept_outlines_roundtrip_and_bad_files(msc, tmp_path):
    v = _read(msc / "01", frames=6)
    cfg = FitConfig(max_shape_frames=2, variance_share=0.95, calibration_frames=0)
    assert run_job(fit_shape_model(v, cfg)).outlines is None  # off by default: the bundled model has none
    model = run_job(fit_shape_model(v, cfg.replace(keep_outlines=4, outline_points=64)))
    ol = model.outlines
    assert ol.shape == (4, 64, 2) and np.all(np.isfinite(ol))
    from napari_bvdm.shapes.contours import outline_area

    assert all(abs(outline_area(o) / np.pi - 1) < 0.01 for o in ol)  # size-normalised: area pi
    assert "real outlines kept: 4 of 64 vertices" in model.summary()
    p = model.save(tmp_path / "m.json")
    back = ShapeModel.load(p)
    np.testing.assert_allclose(back.outlines, ol)
    assert back.config.keep_outlines == 4

    data = json.loads(p.read_text())
    data["params"]["outlines"]["polygons"] = [[1.0, 2.0], [3.0, 4.0]]
    (tmp_path / "flat.json").write_text(json.dumps(data))
    with pytest.raises(ShapeModelError, match=r"params\.outlines\.polygons must be \(outlines, vertices, 2\)"):
        ShapeModel.load(tmp_path / "flat.json")
    data = json.loads(p.read_text())
    data["params"]["outlines"]["polygons"][0][0][0] = None
    (tmp_path / "nan.json").write_text(json.dumps(data))
    with pytest.raises(ShapeModelError, match=r"params\.outlines\.polygons holds non-finite values"):
        ShapeModel.load(tmp_path / "nan.json")
    with pytest.raises(Exception, match="keep_outlines"):
        FitConfig(keep_outlines=-1)
