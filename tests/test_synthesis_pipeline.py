"""Scene statistics, background generation and the streaming masks -> video pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_bvdm.flow import FlowConfig, FlowModel, compose, warp
from napari_bvdm.io.video import InputError
from napari_bvdm.runtime.config import ConfigError
from napari_bvdm.runtime.progress import Cancelled, CancelToken, Progress
from napari_bvdm.synthesis import (
    SceneStats,
    SynthesisConfig,
    SynthFrame,
    fit_scene_stats,
    generate_background,
    generate_video,
)
from napari_bvdm.texture.normalisation import Normalisation

SCENE = SceneStats(level=0.05, noise=0.02, noise_corr=0.3, illumination=[[0.04, 0.05], [0.05, 0.06]],
                   cell_brightness=(0.4, 0.05), normalisation={"offset": 10.0, "scale": 200.0, "dtype": "uint16"})


class RecordingPainter:
    """Seeded test painter that records every call (steps, init given, batch size)."""

    crop_size = 32
    normalisation = Normalisation(10.0, 200.0, "uint16")

    def __init__(self):
        self.calls = []

    def paint(self, masks, brightness, *, init=None, steps=None, generator=None):
        self.calls.append({"n": len(masks), "steps": steps, "init": init is not None})
        noise = torch.randn(masks.shape, generator=generator).numpy().astype(np.float32)
        if init is None:
            tex = brightness[:, None, None] * (1 + 0.2 * noise)
        else:
            tex = init + 0.002 * steps * noise
        return np.where(masks, tex, 0).astype(np.float32)


def _toy_labels(n_frames: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Two cells moving right; cell 1 divides at t = 4 into 3 and 4."""
    lab = np.zeros((n_frames, 64, 80), np.uint16)
    for t in range(n_frames):
        lab[t, 40:52, 10 + t:24 + t] = 2
        if t < 4:
            lab[t, 8:24, 20 + t:34 + t] = 1
        else:
            lab[t, 4:14, 20 + t:34 + t] = 3
            lab[t, 18:28, 20 + t:34 + t] = 4
    lineage = np.array([[1, 0, 3, 0], [2, 0, n_frames - 1, 0], [3, 4, n_frames - 1, 1], [4, 4, n_frames - 1, 1]])
    return lab, lineage


def _flow() -> FlowModel:
    torch.manual_seed(0)
    return FlowModel(FlowConfig(encoder=(4, 8), decoder=(8, 8), crop_size=32))


def _run(labels, painter, flow, cfg, **kw):
    frames, progress = [], []
    gen = generate_video(labels, painter, flow, SCENE, cfg, **kw)
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return frames, progress, stop.value
        (frames if isinstance(ev, SynthFrame) else progress).append(ev)


def test_fit_scene_stats_on_real_gowt1_and_background_histogram(gowt1):
    import tifffile

    idx = [0, 30, 60, 90]
    img = np.stack([tifffile.imread(gowt1 / "01" / f"t{i:03d}.tif") for i in idx])
    lab = np.stack([tifffile.imread(gowt1 / "01_GT" / "TRA" / f"man_track{i:03d}.tif") for i in idx])
    stats = fit_scene_stats(img, lab, source="GOWT1")
    assert stats.normalisation["dtype"] == "uint8"
    assert 0 < stats.noise < 0.1 and stats.cell_brightness[0] > 5 * stats.noise
    assert 500 < stats.cell_area < 5000
    # generated background reproduces the real background's level and spread (raw units)
    from scipy import ndimage as ndi

    real_bg = img[0][~ndi.binary_dilation(lab[0] > 0, iterations=15)]  # TRA markers: wide margin.astype(float)
    fake = stats.norm.inverse(generate_background(stats, img.shape[1:], np.random.default_rng(0))).astype(float)
    assert abs(np.median(fake) - np.median(real_bg)) <= 1.0
    assert 0.7 < fake.std() / real_bg.std() < 1.4
    # round trip through JSON
    assert SceneStats.from_dict(stats.to_dict()) == stats


def test_background_illumination_and_noise_correlation():
    rng = np.random.default_rng(1)
    bg = generate_background(SCENE, (128, 128), rng)
    assert bg[:20, :20].mean() < bg[-20:, -20:].mean()  # slow illumination gradient kept
    r = bg - generate_background(SCENE.__class__(**{**SCENE.to_dict(), "noise": 0.0}), (128, 128), rng)
    rho = np.corrcoef(r[:, 1:].ravel(), r[:, :-1].ravel())[0, 1]
    assert abs(r.std() - 0.02) < 0.003 and 0.2 < rho < 0.45
    with pytest.raises(InputError, match="noise_corr"):
        SceneStats(level=0, noise=0.1, noise_corr=1.5)


def test_noise_share_scales_the_added_camera_noise():
    """The diffusion painter's textures carry grain already: half the fitted noise variance is added on top
    of DDIM's, none on DPM-Solver++'s (its ``camera_noise_share``); the classical painter (no attribute) gets
    all of it."""
    from napari_bvdm.synthesis.background import add_shot_noise
    from napari_bvdm.texture.painter import ClassicalPainter, DiffusionPainter

    scene = SceneStats(**{**SCENE.to_dict(), "noise_gain": 0.01})
    flat = np.full((200, 200), 0.5, np.float32)
    where = np.ones_like(flat, bool)
    spread = {}
    for share in (1.0, 0.5, 0.0):
        f = flat.copy()
        add_shot_noise(scene, f, where, np.random.default_rng(0), share=share)
        spread[share] = float(f.var())
    assert spread[1.0] == pytest.approx(0.005, rel=0.05) and spread[0.5] == pytest.approx(0.0025, rel=0.05)
    assert spread[0.0] == 0.0
    from napari_bvdm.texture.model import TextureModel, TextureModelConfig
    from napari_bvdm.texture.unet import UNetConfig

    tiny = TextureModel(TextureModelConfig(unet=UNetConfig(width=4, depth=2), crop_size=32), SCENE.norm)
    assert DiffusionPainter(tiny, "ddim").camera_noise_share == 0.5
    assert DiffusionPainter(tiny, "dpm").camera_noise_share == 0.0
    assert not hasattr(ClassicalPainter, "camera_noise_share")
    lab, lin = _toy_labels(3)
    painter = RecordingPainter()
    grain = {}


    def frame1(cfg):
        gen = generate_video(lab, painter, _flow(), scene, cfg, lineage=lin)
        return [ev for ev in gen if isinstance(ev, SynthFrame)][1].image.astype(float)

    scene, noisy = SCENE, scene  # the same scene without signal-dependent noise
    quiet = frame1(SynthesisConfig(seed=0))
    scene = noisy
    for share in (None, 0.5, 0.0):
        if share is not None:
            painter.camera_noise_share = share
        grain[share] = float((frame1(SynthesisConfig(seed=0)) - quiet)[lab[1] > 0].std())
    assert grain[0.0] == 0.0 < grain[0.5] < grain[None]  # RecordingPainter has no share: all of the noise
    assert grain[0.5] / grain[None] == pytest.approx(np.sqrt(0.5), rel=0.15)


def test_streams_frames_labels_exact_and_daughters_inherit():
    labels, lineage = _toy_labels()
    painter = RecordingPainter()
    frames, progress, info = _run(labels, painter, _flow(), SynthesisConfig(tf0=20, tf_non0=3), lineage=lineage)
    assert [f.t for f in frames] == list(range(8)) and len(progress) == 8
    for f in frames:
        assert f.image.dtype == np.uint16 and f.image.shape == (64, 80)
        assert np.array_equal(f.labels, labels[f.t])  # the label video is exactly the cells' pixels
        assert f.labels.dtype == np.uint16
    # one batched first-frame call (both cells), then one refresh call per frame; daughters never get Tf0
    fresh = [c for c in painter.calls if not c["init"]]
    assert fresh == [{"n": 2, "steps": 20, "init": False}]
    assert all(c["steps"] == 3 for c in painter.calls if c["init"]) and len(painter.calls) == 8
    assert info["painter_calls"] == 8 and info["crop_size"] == 32
    # cells are brighter than the background, in raw units
    f = frames[5]
    cell = f.image[f.labels > 0].astype(float).mean()
    assert cell > f.image[f.labels == 0].astype(float).mean() + 40


def test_each_track_gets_its_own_crop_size_and_daughters_fit_their_mothers():
    lab = np.zeros((6, 96, 96), np.uint16)
    for t in range(6):
        lab[t, 70:80, 10 + t:20 + t] = 2  # small cell: 10 px
        if t < 3:
            lab[t, 10:40, 30 + t:60 + t] = 1  # large cell: 30 px, divides at t = 3
        else:
            lab[t, 8:20, 30 + t:42 + t] = 3
            lab[t, 26:38, 40 + t:52 + t] = 4
    lineage = np.array([[1, 0, 2, 0], [2, 0, 5, 0], [3, 3, 5, 1], [4, 3, 5, 1]])
    painter = RecordingPainter()
    frames, _, info = _run(lab, painter, _flow(), SynthesisConfig(tf0=20, tf_non0=3), lineage=lineage)
    # 30 px + margin -> 40 (a multiple of 4): the large cell and its daughters' first frame (they start from
    # her texture); then the daughters, like the small cell, fit 32
    assert info["crop_sizes"] == {32: 10, 40: 5} and info["crop_size"] == 40
    assert [c["n"] for c in painter.calls] == [1, 1] * 3 + [1, 2] + [3, 3]  # one batch per crop size and frame
    assert sum(not c["init"] for c in painter.calls) == 2  # daughters inherit: no fresh painting after t = 0
    for f in frames:
        assert np.array_equal(f.labels, lab[f.t])
        assert f.image[f.labels > 0].astype(float).mean() > f.image[f.labels == 0].astype(float).mean() + 40


def test_same_seed_same_video_other_seed_differs():
    labels, lineage = _toy_labels(5)
    a = _run(labels, RecordingPainter(), _flow(), SynthesisConfig(seed=7), lineage=lineage)[0]
    b = _run(labels, RecordingPainter(), _flow(), SynthesisConfig(seed=7), lineage=lineage)[0]
    c = _run(labels, RecordingPainter(), _flow(), SynthesisConfig(seed=8), lineage=lineage)[0]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[2].image, c[2].image)


def test_cancel_stops_at_frame_granularity():
    labels, lineage = _toy_labels()
    token = CancelToken()
    gen = generate_video(labels, RecordingPainter(), _flow(), SCENE, lineage=lineage, cancel=token)
    seen = 0
    with pytest.raises(Cancelled):
        for ev in gen:
            if isinstance(ev, SynthFrame):
                seen += 1
                if seen == 3:
                    token.cancel()
    assert seen == 3


def test_independent_and_one_cell_at_a_time_schedules():
    labels, lineage = _toy_labels(4)
    p = RecordingPainter()
    _run(labels, p, None, SynthesisConfig(temporal="independent", tf0=5), lineage=lineage)
    assert all(not c["init"] and c["steps"] == 5 for c in p.calls) and len(p.calls) == 4
    p = RecordingPainter()
    _, _, info = _run(labels, p, _flow(), SynthesisConfig(warp="reference"), lineage=lineage)
    assert all(c["n"] == 1 for c in p.calls) and info["painter_calls"] == 8 and info["flow_calls"] == 6
    with pytest.raises(InputError, match="flow model"):
        _run(labels, p, None, SynthesisConfig(), lineage=lineage)


def test_bad_label_videos_are_handled():
    labels, _ = _toy_labels(6)
    # per-frame ids (1..N in each frame, not tracks): linked by overlap, with a warning
    per_frame = np.zeros_like(labels)
    for t in range(len(labels)):
        for i, lab in enumerate(sorted(set(np.unique(labels[t])) - {0}), start=1):
            per_frame[t][labels[t] == lab] = (i + t) % 3 + 1
    with pytest.warns(UserWarning, match="not tracks"):
        frames, _, info = _run(per_frame, RecordingPainter(), _flow(), SynthesisConfig())
    assert (info["lineage"][:, 3] > 0).sum() == 2  # the division was recovered
    assert all(((f.labels > 0) == (labels[f.t] > 0)).all() for f in frames)
    # an empty frame, a one-frame cell and a cell larger than the crop
    lab = labels.copy()
    lab[2] = 0
    lab[4, 50:60, 60:70] = 9
    lab[5, 2:60, 30:75] = 0
    lab[5, 2:60, 30:75] = 5
    with pytest.warns(UserWarning) as rec:
        frames, _, info = _run(lab, RecordingPainter(), _flow(), SynthesisConfig())
    msgs = " ".join(str(w.message) for w in rec)
    assert "hold no cell" in msgs
    # only the large cell's track gets the large crop (a multiple of the tiny flow net's step, 4)
    assert info["crop_size"] == 68 and info["crop_sizes"][68] == 1 and min(info["crop_sizes"]) == 32
    assert frames[2].labels.max() == 0 and len(frames) == 6
    with pytest.raises(InputError, match=r"\(T, H, W\)"):
        _run(labels[0], RecordingPainter(), _flow(), SynthesisConfig())


def test_model_mismatch_warnings():
    labels, lineage = _toy_labels(3)
    flow = _flow()
    flow.extra["median_cell_area"] = 5000.0
    painter = RecordingPainter()
    painter.normalisation = Normalisation(1000.0, 60000.0, "uint16")
    with pytest.warns(UserWarning) as rec:
        _run(labels, painter, flow, SynthesisConfig(), lineage=lineage)
    msgs = " ".join(str(w.message) for w in rec)
    assert "pixel size" in msgs and "intensity range" in msgs


def test_composed_warps_do_not_drift_where_sequential_ones_do():
    """Rotate a textured disk 4 degrees per frame for 30 frames with exact flows: compare to the truth."""
    n = 64
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                            indexing="ij")
    c = (n - 1) / 2
    g = torch.Generator().manual_seed(0)
    tex = torch.nn.functional.avg_pool2d(torch.rand(1, 1, n, n, generator=g), 3, 1, 1)

    def rot_flow(deg: float) -> torch.Tensor:  # u(x) = R(x - c) + c - x: sample the previous frame rotated
        a = np.deg2rad(deg)
        y, x = yy - c, xx - c
        return torch.stack([np.cos(a) * y - np.sin(a) * x - y, np.sin(a) * y + np.cos(a) * x - x])[None]

    u = rot_flow(4.0)
    seq_bil, seq_near, disp = tex, tex, None
    for _ in range(30):
        seq_bil = warp(seq_bil, u)
        seq_near = warp(seq_near, u, mode="nearest")
        disp = u if disp is None else compose(disp, u)
    truth = warp(tex, rot_flow(120.0))
    inside = ((yy - c) ** 2 + (xx - c) ** 2 < (0.35 * n) ** 2)[None, None]
    err = {k: float((v - truth).abs()[inside].mean()) for k, v in
           {"composed": warp(tex, disp), "bilinear": seq_bil, "nearest": seq_near}.items()}
    assert err["composed"] < 0.5 * err["bilinear"] and err["composed"] < 0.5 * err["nearest"]


def test_progress_events_have_stage_and_totals():
    labels, lineage = _toy_labels(3)
    _, progress, _ = _run(labels, RecordingPainter(), _flow(), SynthesisConfig(), lineage=lineage)
    assert all(isinstance(p, Progress) and p.stage == "generate" and p.total == 3 for p in progress)


def test_quality_measures_separate_consistent_from_independent_frames():
    from napari_bvdm.synthesis.metrics import cell_texture_stats, temporal_consistency

    labels, _ = _toy_labels(5)
    rng = np.random.default_rng(0)
    field = 100 + 20 * rng.random(labels.shape[1:])
    # texture moves with the cells (1 px per frame to the right)
    shifted = np.stack([np.where(labels[t] > 0, np.roll(field, t, axis=1), 10) for t in range(5)]).astype(np.float32)
    fresh = np.where(labels > 0, 100 + 20 * rng.random(labels.shape), 10).astype(np.float32)
    flow = FlowModel(FlowConfig(encoder=(4, 8), decoder=(8, 8), crop_size=32))
    for p in flow.net.head.parameters():
        torch.nn.init.zeros_(p)  # identity flow: crops are cell-centred, so a pure shift needs no warp
    moving = temporal_consistency(shifted, labels, flow, range(3), crop=32, erode=1, background=10)
    indep = temporal_consistency(fresh, labels, flow, range(3), crop=32, erode=1, background=10)
    assert moving["cells"] > 0 and moving["rel_mad"] < 0.02 < 0.05 < indep["rel_mad"]
    smooth = temporal_consistency(fresh, labels, flow, range(3), crop=32, erode=1, background=10, smooth=2.0)
    assert smooth["rel_mad"] < indep["rel_mad"]  # smoothing removes per-pixel noise
    stats = cell_texture_stats(fresh[0], labels[0], erode=1, background=10)
    assert set(stats) == {1, 2} and 0.03 < stats[1]["cv"] < 0.1


class FlatteningPainter(RecordingPainter):
    """A refresh that halves the texture contrast every frame (worst case of a blurring warp chain)."""

    def paint(self, masks, brightness, *, init=None, steps=None, generator=None):
        if init is None:
            return super().paint(masks, brightness, init=None, steps=steps, generator=generator)
        out = init.copy()
        for k, m in enumerate(masks):
            mu = init[k][m].mean()
            out[k][m] = mu + 0.5 * (init[k][m] - mu)
        return np.where(masks, out, 0).astype(np.float32)


def test_contrast_matching_keeps_texture_contrast_over_a_track():
    """A painter that halves the contrast of every refreshed texture: the engine holds each track's contrast."""
    labels, lineage = _toy_labels(6)
    frames, _, _ = _run(labels, FlatteningPainter(), _flow(), SynthesisConfig(warp="reference"), lineage=lineage)
    cell = lambda f: f.image[f.labels == 2].astype(float)  # noqa: E731
    cvs = [cell(f).std() / (cell(f).mean() - 10) for f in frames]
    assert cvs[-1] == pytest.approx(cvs[0], rel=0.15)  # 0.5 ** 5 without the matching


def test_halo_holds_the_frames_to_the_real_halo():
    """`SynthesisConfig.halo` offsets the rings outside the cells so each frame's mean halo is the target."""
    from napari_bvdm.texture.profile import halo_contrasts

    labels, lineage = _toy_labels(3)
    means = {}
    for halo in ([0.3, 0.1], []):
        cfg = SynthesisConfig(halo=halo)
        frames, _, _ = _run(labels, RecordingPainter(), _flow(), cfg, lineage=lineage)
        means[bool(halo)] = np.nanmean(np.concatenate([halo_contrasts(f.image.astype(np.float64), f.labels, 2)
                                                       for f in frames]), axis=0)
    np.testing.assert_allclose(means[True], [0.3, 0.1], atol=0.03)
    assert abs(means[False][1]) < 0.03  # without it the light ends 1 px out (edge blend only)
    with pytest.raises(ConfigError):
        SynthesisConfig(halo=[float("nan")])


def test_fixed_pattern_rows_and_columns_fitted_and_painted():
    """A bright band over the top rows, alternating row offsets and one dark column (the fixed pattern of
    Fluo-C2DL-MSC's camera) are fitted as row / column offsets and painted into generated backgrounds; a
    half-size output gets their block means. Without them (``fixed_pattern=False``) the smooth grid misses
    the band."""
    rng = np.random.default_rng(0)
    t, h, w = 4, 96, 128
    rows = 0.3 * np.exp(-np.arange(h) / 4.0) + np.where(np.arange(h) % 2, 0.02, -0.02)
    cols = np.zeros(w)
    cols[40] = -0.2
    img = 0.5 + rows[None, :, None] + cols[None, None, :] + 0.01 * rng.standard_normal((t, h, w))
    lab = np.zeros((t, h, w), np.int32)
    lab[:, 60:70, 90:100] = 1
    img[lab > 0] += 0.5
    norm = Normalisation(0.0, 1.0, "float32")
    stats = fit_scene_stats(img, lab, norm, grid=4)
    fit_r = np.asarray(stats.row_profile)
    assert np.abs((fit_r - fit_r[40:].mean())[:12] - (rows - rows[40:].mean())[:12]).max() < 0.05
    assert stats.col_profile[40] < -0.15 and abs(stats.col_profile[20]) < 0.02
    bg = generate_background(SceneStats(**{**stats.to_dict(), "noise": 0.0}), (h, w), rng)
    assert bg[0].mean() - bg[40:].mean() > 0.2 and bg[:, 40].mean() - bg[:, 20].mean() < -0.15
    half = generate_background(SceneStats(**{**stats.to_dict(), "noise": 0.0}), (h // 2, w // 2), rng)
    assert half[0].mean() - half[20:].mean() > 0.15
    flat = fit_scene_stats(img, lab, norm, grid=4, fixed_pattern=False)
    assert flat.row_profile == [] and flat.col_profile == []
    smooth = generate_background(SceneStats(**{**flat.to_dict(), "noise": 0.0}), (h, w), rng)
    assert smooth[0].mean() - smooth[40:].mean() < 0.15  # the grid alone smears the band
    assert SceneStats.from_dict(stats.to_dict()) == stats
    with pytest.raises(InputError, match="row_profile"):
        SceneStats(level=0, noise=0.1, row_profile=[0.0, float("nan")])


def test_msc_top_rows_are_brighter_in_real_and_synthetic_backgrounds(msc):
    """Real MSC frames are about 2 noise sd brighter over their top rows (fading over ~40 px at full
    resolution); the fitted scene paints that into generated backgrounds."""
    from napari_bvdm.evaluate.data import load_sequence

    v = load_sequence(msc / "01")
    stats = fit_scene_stats(v.image, v.labels.get("TRA"), max_frames=4)
    r = np.asarray(stats.row_profile)
    assert r[:4].mean() > 1.5 * stats.noise and abs(r[200:600].mean()) < 0.3 * stats.noise
    bg = generate_background(stats, v.image.shape[1:], np.random.default_rng(0))
    assert bg[:4].mean() - bg[200:600].mean() > 1.5 * stats.noise


def test_resized_track_state_warps_the_same_texture():
    from napari_bvdm.flow.net import warp
    from napari_bvdm.synthesis.pipeline import _fit

    rng = np.random.default_rng(0)
    anchor = torch.from_numpy(rng.random((1, 1, 32, 32)).astype(np.float32))
    disp = torch.from_numpy(rng.normal(0, 1.5, (1, 2, 32, 32)).astype(np.float32))
    small = warp(anchor, disp)[0, 0].numpy()
    big = warp(_fit(anchor, 48), _fit(disp, 48))[0, 0].numpy()  # padded by 8 px on each side
    assert np.allclose(big[8:40, 8:40], small, atol=1e-5)
    assert np.array_equal(_fit(_fit(small, 48), 32), small) and _fit(small, 16).shape == (16, 16)
