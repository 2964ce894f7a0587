"""The rim profile: measured on real cells, kept with the texture model, shading the painters' silhouettes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

import napari_bvdm
from napari_bvdm.io.video import InputError
from napari_bvdm.runtime.config import ConfigError
from napari_bvdm.runtime.progress import run_job
from napari_bvdm.runtime.weights import WeightsError, load_weights, save_weights
from napari_bvdm.texture import painter as painter_module
from napari_bvdm.texture.crops import load_ctc_crops
from napari_bvdm.texture.model import TextureModel, TextureModelConfig
from napari_bvdm.texture.normalisation import Normalisation
from napari_bvdm.texture.painter import ClassicalPainter, DiffusionPainter
from napari_bvdm.texture.profile import RimProfile
from napari_bvdm.texture.unet import UNetConfig

TINY = TextureModelConfig(unet=UNetConfig(width=4, depth=3, t_channels=16), crop_size=96)


@pytest.fixture(scope="module")
def crops():
    from conftest import data_path

    return load_ctc_crops(data_path("Fluo-N2DH-GOWT1", "01"))


def _depth_means(images: np.ndarray, masks: np.ndarray, depths=(1, 2, 6)) -> np.ndarray:
    """Mean over cells of the relative intensity at whole-pixel depths inside the mask."""
    rows = []
    for img, m in zip(images, masks, strict=True):
        d = np.ceil(ndi.distance_transform_edt(m) - 1e-6)
        mean = img[m].mean()
        rows.append([img[m & (d == k)].mean() / mean if (m & (d == k)).any() else np.nan for k in depths])
    return np.nanmean(rows, 0)


def test_rim_profile_of_real_nuclei(crops):
    p = RimProfile.from_crops(crops)
    assert p.cells == len(crops) and p.max_distance == 12
    v = np.asarray(p.values)
    # GOWT1 nuclei are dim at the outline and reach their plateau about 4 px inside
    assert 0.5 < v[0] < 0.8 and v[0] < v[1] < v[2] < v[3]
    assert 0.95 < v[4:].mean() < 1.2
    # the profile is the cells' own mean, depth by depth
    assert _depth_means(crops.images, crops.masks, (1,))[0] == pytest.approx(v[0], rel=1e-4)
    # shading: mean 1 inside every mask, 0 outside, rim / deep = profile ratio
    s = p.shade(crops.masks[:5])
    for i in range(5):
        m = crops.masks[i]
        assert s[i][m].mean() == pytest.approx(1.0, rel=1e-5) and np.all(s[i][~m] == 0)
    d = np.ceil(ndi.distance_transform_edt(crops.masks[0]) - 1e-6)
    assert s[0][d == 1].mean() / s[0][d == 3].mean() == pytest.approx(v[0] / v[2], rel=1e-5)
    assert p.shade(crops.masks[0]).shape == (96, 96)
    assert RimProfile.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_rim_profile_bad_input(crops):
    with pytest.raises(InputError, match="at least 8 cells"):
        RimProfile.fit(crops.images[:5], crops.masks[:5])
    with pytest.raises(InputError, match="max_distance"):
        RimProfile.fit(crops.images, crops.masks, max_distance=0)
    with pytest.raises(InputError, match="same"):
        RimProfile.fit(crops.images[:10], crops.masks[:9])
    with pytest.raises(ConfigError, match="values"):
        RimProfile.from_dict({"values": [1.0, float("nan")], "cells": 3})
    with pytest.raises(ConfigError, match="values"):
        RimProfile.from_dict({"values": [1.0], "cells": 3})


def test_model_keeps_its_profile_and_painters_use_it(tmp_path, crops):
    torch.manual_seed(0)
    p = RimProfile.from_crops(crops)
    m = TextureModel(TINY, Normalisation(0.0, 1.0), profile=p)
    path = m.save(tmp_path / "t.safetensors")
    m2 = TextureModel.load(path)
    assert m2.profile == p
    assert DiffusionPainter(m2).profile == p
    assert DiffusionPainter(m2, rim_profile=False).profile is None
    flat = RimProfile(values=[1.0, 1.0], cells=0)
    assert DiffusionPainter(m2, profile=flat).profile == flat
    # files written before the profile existed load without one (flat silhouette)
    tensors, meta = load_weights(path, "texture-ddpm")
    extra = {k: v for k, v in meta["extra"].items() if k != "profile"}
    save_weights(tmp_path / "old.safetensors", "texture-ddpm", tensors, meta["config"], extra=extra)
    assert TextureModel.load(tmp_path / "old.safetensors").profile is None
    save_weights(tmp_path / "bad.safetensors", "texture-ddpm", tensors, meta["config"],
                 extra={**extra, "profile": {"values": [0.5, -1.0], "cells": 9}})
    with pytest.raises(WeightsError, match="rim profile"):
        TextureModel.load(tmp_path / "bad.safetensors")


def test_match_brings_a_batch_to_the_profile(crops):
    prof = RimProfile.from_crops(crops)
    masks = crops.masks[:30]
    flat = masks.astype(np.float32) * 0.4
    out = prof.match(flat, masks)
    # the same shape up to one factor (a batch of cells reaching other depths than the fitted ones cannot hold
    # every cell's mean at 1 and the exact values at once; painters rescale to the brightness afterwards)
    ratio = prof.measure(out, masks) / prof.values
    assert ratio.std() < 2e-3 and abs(ratio.mean() - 1) < 0.01
    assert np.all(out[~masks] == flat[~masks])
    # one gain per depth for the batch: cells keep their own variations around the mean rim
    real = crops.images[:30]
    again = prof.match(real, masks)
    depth = np.stack([np.minimum(np.ceil(ndi.distance_transform_edt(m) - 1e-6), 13) for m in masks])
    ok = masks & (real > 0)
    for k in range(1, 14):
        gains = again[ok & (depth == k)] / real[ok & (depth == k)]
        assert np.ptp(gains) < 1e-4 * gains.mean()
    r2 = prof.measure(again, masks) / prof.values
    assert r2.std() < 2e-3


def test_painters_draw_the_real_rim(crops, monkeypatch):
    """With a stand-in denoiser that returns a flat cell whatever its start, the diffusion painter's output still
    has the real cells' rim (start shaded, batch matched); with ``rim_profile=False`` it stays flat."""
    prof = RimProfile.from_crops(crops)
    real = _depth_means(crops.images, crops.masks)
    monkeypatch.setattr(painter_module, "sdedit", lambda eps_fn, schedule, x0, *a, **k: (x0 > 0).to(x0.dtype))
    model = TextureModel(TINY, crops.normalisation, profile=prof)
    masks, br = crops.masks[:40], crops.brightness[:40]
    shaded = DiffusionPainter(model, "ddim", edge_sigma=0).paint(masks, br, generator=0)
    flat = DiffusionPainter(model, "ddim", edge_sigma=0, rim_profile=False).paint(masks, br, generator=0)
    got, got_flat = _depth_means(shaded, masks), _depth_means(flat, masks)
    assert got[0] / got[2] == pytest.approx(real[0] / real[2], abs=0.05)
    assert got_flat[0] / got_flat[2] == pytest.approx(1.0, abs=1e-4)
    # a refresh (start from the previous texture) is held to the profile as well
    again = _depth_means(DiffusionPainter(model, "ddim", edge_sigma=0).paint(masks, br, init=flat, generator=0), masks)
    assert again[0] / again[2] == pytest.approx(real[0] / real[2], abs=0.05)
    # the classical painter shades its silhouette the same way when asked (its texture noise on top)
    cl = ClassicalPainter.from_crops(crops, prof)
    assert cl.profile == prof and ClassicalPainter.from_crops(crops).profile is None
    cl.stats = cl.stats.replace(edge_sigma=0.0)
    a = _depth_means(cl.paint(masks, br, generator=np.random.default_rng(0)), masks)
    assert a[0] / a[2] == pytest.approx(real[0] / real[2], abs=0.08)


@pytest.mark.slow
def test_evaluation_sets_hold_the_real_rim(msc, tmp_path):
    """`bvdm evaluate --generate` paints its sets with the training part's rim profile: the classical set's
    cells are dimmer at the outline than inside, as the real ones (a flat silhouette gave 0.847); the sets
    are valid CTC datasets and their settings are saved next to them."""
    from napari_bvdm.evaluate.synthetic_sets import SyntheticSetsConfig, make_synthetic_sets
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.io.validator import validate_ctc
    from napari_bvdm.synthesis.config import GenerateConfig

    flow_path = Path(napari_bvdm.__file__).parent / "defaults" / "flow.safetensors"
    gen = GenerateConfig().with_updates({"output.videos": 1, "device": "cpu"})
    cfg = SyntheticSetsConfig(frames=3, downsample=2, synthesis=gen)
    written = run_job(make_synthetic_sets(msc / "01", tmp_path, cfg, max_frames=24, flow_model=flow_path,
                                          sets=("classical",)))
    assert validate_ctc(written["classical"]) == []
    assert SyntheticSetsConfig.load(tmp_path / "synthetic_sets.json") == cfg
    v = read_video(written["classical"] / "01", check=False)
    img, lab = np.asarray(v.image, np.float32), np.asarray(v.labels["SEG"])
    cells = [(img[t], lab[t] == i) for t in range(lab.shape[0]) for i in np.unique(lab[t])[1:]]
    m = _depth_means(np.stack([c[0] for c in cells]), np.stack([c[1] for c in cells]), (1, 3))
    assert m[0] / m[1] < 0.837


def _disk_scene(ring=(0.0, 0.0), contrast=100.0, bg=10.0):
    """Two disks of `bg + contrast` on `bg`, with rings at 1, 2 px outside at `bg + ring[k] * contrast`."""
    yy, xx = np.mgrid[:96, :128]
    lab = np.zeros((96, 128), np.int32)
    lab[(yy - 30) ** 2 + (xx - 30) ** 2 <= 12**2] = 1
    lab[(yy - 60) ** 2 + (xx - 90) ** 2 <= 15**2] = 2
    img = np.full(lab.shape, bg, np.float32)
    img[lab > 0] = bg + contrast
    d = np.ceil(ndi.distance_transform_edt(lab == 0) - 1e-6)
    for k, r in enumerate(ring, start=1):
        img[d == k] = bg + r * contrast
    return img, lab


def test_halo_measured_and_applied_as_offsets():
    from napari_bvdm.texture.profile import apply_halo, halo_contrasts, measure_halo

    img, lab = _disk_scene((0.3, 0.1))
    per_cell = halo_contrasts(img, lab, 3)
    assert per_cell.shape == (2, 3)
    np.testing.assert_allclose(per_cell, [[0.3, 0.1, 0.0]] * 2, atol=1e-6)
    # invariant to an affine change of the intensities
    np.testing.assert_allclose(halo_contrasts(3 * img + 50, lab, 3), per_cell, atol=1e-6)
    values, cells = measure_halo(img[None], lab[None], 3)
    assert cells == 2 and np.allclose(values, [0.3, 0.1, 0.0], atol=1e-6)

    flat, lab = _disk_scene()
    rng = np.random.default_rng(0)
    noisy = flat + rng.normal(0, 2, flat.shape).astype(np.float32)
    out = apply_halo(noisy, lab, [0.3, 0.1])
    got = halo_contrasts(out, lab, 2)
    np.testing.assert_allclose(np.nanmean(got, axis=0), [0.3, 0.1], atol=0.02)
    d = np.ceil(ndi.distance_transform_edt(lab == 0) - 1e-6)
    moved = out != noisy
    assert not moved[lab > 0].any() and not moved[d > 2].any()  # only the rings change
    assert np.std((out - noisy)[d == 1]) < 1.0  # an offset per cell: the noise is kept
    assert np.array_equal(apply_halo(noisy, lab, []), noisy)
    assert np.array_equal(apply_halo(noisy, np.zeros_like(lab), [0.3]), noisy)


def test_halo_of_real_msc_cells(msc):
    """Real MSC cells fade over several pixels beyond their annotated outline."""
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.texture.profile import measure_halo

    v = read_video(msc / "01", check=False)
    seg = np.asarray(v.labels["SEG"])
    idx = [t for t in range(seg.shape[0]) if seg[t].any()][:6]
    values, cells = measure_halo(np.asarray(v.image)[idx], seg[idx], 4)
    assert cells >= 8
    assert values[0] > 0.15 and np.all(np.diff(values) < 0) and values[3] > 0.02


@pytest.mark.slow
def test_recipe_measures_the_halo_on_the_real_video(msc):
    """A real video with labels gives the recipe the real cells' halo; without one there is none."""
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.synthesis import recipe
    from napari_bvdm.synthesis.config import GenerateConfig

    cfg = GenerateConfig().with_updates({"texture.model": "classical", "device": "cpu"})
    ing = recipe.prepare(cfg, real_video=read_video(msc / "01", check=False))
    assert len(ing.halo) == 4 and ing.halo[0] > ing.halo[1] > 0
    assert recipe.engine_config(cfg, ing.halo).halo == ing.halo
    assert recipe.prepare(cfg).halo == []


def test_gui_statistics_of_the_real_video_are_computed_once_per_video():
    """Previews reuse the halo, scene statistics and crops; a new video or labels painted in place recompute."""
    from types import SimpleNamespace

    from napari_bvdm.io.toy import toy_sequence
    from napari_bvdm.io.video import Video
    from napari_bvdm.shapes import ShapeModel
    from napari_bvdm.widgets._recipe import GenerateParams, derived, ingredients

    image, labels, lineage = toy_sequence()
    state = SimpleNamespace(video=Video(image=image, labels={"TRA": labels}, lineage=lineage), extras={})
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert derived(state, "x", compute) == 1 and derived(state, "x", compute) == 1 and len(calls) == 1
    assert derived(state, "x", compute, "other key") == 2
    labels[0, :3, :3] = 7  # a napari paint stroke edits the layer's array in place
    assert derived(state, "x", compute) == 3
    state.video = Video(image=image, labels={"TRA": labels.copy()}, lineage=lineage)
    assert derived(state, "x", compute) == 4 and derived(state, "x", compute) == 4
    state.shape_model, state.texture_model, state.flow_model = ShapeModel.default(), None, None
    cfg = GenerateParams(painter="classical").to_config()
    a, b = ingredients(state, cfg), ingredients(state, cfg)
    assert a.scene is b.scene and a.halo is not None and a.painter.stats == b.painter.stats
    assert derived(SimpleNamespace(video=None), "x", compute) == 5  # nothing to key on: computed every time


@pytest.mark.slow
def test_evaluation_sets_follow_crowding(msc, tmp_path):
    """``synthesis.shapes.crowding`` crowds the simulated videos of the evaluation sets; it is recorded next
    to them."""
    from napari_bvdm.evaluate.synthetic_sets import SyntheticSetsConfig, make_synthetic_sets
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.synthesis.config import GenerateConfig

    flow_path = Path(napari_bvdm.__file__).parent / "defaults" / "flow.safetensors"
    counts = {}
    for scale in (1.0, 2.0):
        gen = GenerateConfig().with_updates({"output.videos": 1, "device": "cpu", "shapes.crowding": scale})
        cfg = SyntheticSetsConfig(frames=2, downsample=2, synthesis=gen)
        out = tmp_path / f"d{scale}"
        written = run_job(make_synthetic_sets(msc / "01", out, cfg, max_frames=24, flow_model=flow_path,
                                              sets=("classical",)))
        assert SyntheticSetsConfig.load(out / "synthetic_sets.json").synthesis.shapes.crowding == scale
        lab = np.asarray(read_video(written["classical"] / "01", check=False).labels["TRA"])
        counts[scale] = np.mean([len(np.unique(f)) - 1 for f in lab])
    assert 1.5 <= counts[2.0] / counts[1.0] <= 2.5
    with pytest.raises(ConfigError, match="crowding"):
        GenerateConfig().with_updates({"shapes.crowding": -1})
