"""The bundled default texture model paints held-out real GOWT1 masks faithfully."""

from __future__ import annotations

import numpy as np
import pytest

from napari_bvdm.texture.model import DEFAULT_WEIGHTS, TextureModel
from napari_bvdm.texture.painter import DiffusionPainter
from napari_bvdm.texture.realism import otsu_iou


def test_default_weights_load_with_config_and_normalisation():
    assert DEFAULT_WEIGHTS.stat().st_size < 5e6
    m = TextureModel.default()
    assert m.config.crop_size == 96 and m.normalisation.dtype == "uint8"
    assert m.info["val_tracks"] and m.info["steps"] > 500


@pytest.mark.slow
def test_default_model_paints_held_out_gowt1_masks_with_mask_fidelity():
    from conftest import data_path
    from napari_bvdm.texture.crops import load_ctc_crops

    m = TextureModel.default()
    crops = load_ctc_crops(data_path("Fluo-N2DH-GOWT1", "01"))
    held = np.flatnonzero(np.isin(crops.track, m.info["val_tracks"]))[::4][:8]
    masks, br = crops.masks[held], crops.brightness[held]
    p = DiffusionPainter(m, "ddim", ddim_steps=10)
    a = p.paint(masks, br, generator=0)
    assert np.array_equal(a, p.paint(masks, br, generator=0))
    assert otsu_iou(a, masks).mean() >= 0.85
    for i in range(len(held)):
        assert a[i][masks[i]].mean() == pytest.approx(br[i], rel=0.05)


def test_generate_uses_the_measured_default_painter():
    """The default configuration paints with DPM-Solver++ in 15 passes, eta 0.5, at most 4 per refresh and no
    added camera noise (docs/texture.md, docs/synthesis.md: as real as DDPM-200, and a segmenter trained on its
    videos does better), on the bundled texture model."""
    from napari_bvdm.synthesis.config import GenerateConfig
    from napari_bvdm.synthesis.recipe import build_painter

    cfg = GenerateConfig()
    p, path = build_painter(cfg)
    assert path == DEFAULT_WEIGHTS
    assert (p.config.sampler, p.config.ddim_steps, p.config.ddim_eta, p.config.refresh_passes) == ("dpm", 15, 0.5, 4)
    assert p.config.tf_non0 == 50 and p.camera_noise_share == 0.0
    assert p.model.mask_conditioned and p.model.config.cell_level is None
    assert build_painter(cfg.with_updates({"texture.sampler": "ddpm"}))[0].config.sampler == "ddpm"
