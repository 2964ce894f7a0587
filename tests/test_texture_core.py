"""Texture model core: crops from real data, schedule, UNet, weights files, painters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_bvdm.io.video import InputError
from napari_bvdm.runtime.config import ConfigError
from napari_bvdm.runtime.weights import WeightsError, save_weights
from napari_bvdm.texture.crops import MIN_CELLS, check_enough, extract_crops, load_ctc_crops
from napari_bvdm.texture.model import TextureModel, TextureModelConfig
from napari_bvdm.texture.normalisation import Normalisation
from napari_bvdm.texture.painter import ClassicalPainter, ClassicalStats, DiffusionPainter
from napari_bvdm.texture.schedule import CosineSchedule, sdedit, sdedit_timesteps
from napari_bvdm.texture.unet import UNet, UNetConfig, count_parameters

TINY = TextureModelConfig(unet=UNetConfig(width=4, depth=3, t_channels=16), crop_size=96)


@pytest.fixture(scope="module")
def crops(request):
    from conftest import data_path

    return load_ctc_crops(data_path("Fluo-N2DH-GOWT1", "01"))


# --- crops -------------------------------------------------------------------------------------
def test_gowt1_crops_are_centred_cells_with_brightness_and_track_split(crops):
    assert len(crops) > 100 and crops.images.shape[1:] == (96, 96)
    assert crops.normalisation.dtype == "uint8" and crops.normalisation.scale > 50
    # brightness is the mean normalised intensity inside each mask
    i = 7
    assert crops.brightness[i] == pytest.approx(crops.images[i][crops.masks[i]].mean(), rel=1e-5)
    # cells are centred: the mask's bounding-box centre is the crop centre (+-1 px)
    ys, xs = np.nonzero(crops.masks[i])
    assert abs((ys.min() + ys.max() + 1) / 2 - 48) <= 1 and abs((xs.min() + xs.max() + 1) / 2 - 48) <= 1
    # zero (camera floor) beyond the 2-px ring around the cell
    from scipy import ndimage as ndi

    ring = ndi.binary_dilation(crops.masks[i], iterations=3)
    assert np.all(crops.images[i][~ring] == 0)
    # cells cut by the image border are left out and counted
    assert crops.skipped["border"] >= 1
    tr, va = crops.split_by_track(0.25, seed=42)
    assert len(va) > 10 and not set(crops.track[tr]) & set(crops.track[va])
    assert len(tr) + len(va) == len(crops)


def test_crop_bad_input():
    img = np.random.default_rng(0).integers(0, 200, (2, 64, 64)).astype(np.uint8)
    lab = np.zeros((2, 64, 64), np.uint16)
    lab[:, 20:30, 20:30] = 1
    with pytest.raises(InputError, match="without an image"):
        extract_crops(None, lab, crop_size=32)
    with pytest.raises(InputError, match="constant"):
        extract_crops(np.full_like(img, 7), lab, crop_size=32)
    nan = img.astype(np.float32)
    nan[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        extract_crops(nan, lab, crop_size=32)
    with pytest.raises(InputError, match="empty"):
        extract_crops(img, np.zeros_like(lab), crop_size=32)
    c = extract_crops(img, lab, crop_size=32)
    assert len(c) == 2
    with pytest.raises(InputError, match=f"at least {MIN_CELLS}"):
        check_enough(c)
    # a cell touching the border is skipped, not cut
    lab2 = lab.copy()
    lab2[:, 0:10, 40:50] = 2
    assert extract_crops(img, lab2, crop_size=32).skipped["border"] == 2


# --- schedule --------------------------------------------------------------------------------------
def test_cosine_schedule_matches_reference_numbers():
    s = CosineSchedule(1000)
    assert s.alphas_cumprod[199] == pytest.approx(0.898, abs=2e-3)
    assert s.alphas_cumprod[9] == pytest.approx(0.999, abs=2e-4)
    assert s.betas.min() >= 1e-4 and s.betas.max() <= 0.9999
    assert sdedit_timesteps(200, "ddpm") == list(range(199, -1, -1))
    ts = sdedit_timesteps(200, "ddim", 5)
    assert ts[0] == 199 and ts[-1] == 0 and len(ts) == 5


def test_samplers_with_an_oracle_denoiser_recover_the_clean_image():
    s = CosineSchedule(1000)
    x0 = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)

    def oracle(x, t):
        ab = torch.as_tensor(s.alphas_cumprod, dtype=torch.float32)[t].view(-1, 1, 1, 1)
        return (x - ab.sqrt() * x0) / (1 - ab).sqrt()

    g = torch.Generator().manual_seed(0)
    out = sdedit(oracle, s, x0, 200, sampler="ddim", steps=10, generator=g)
    assert torch.allclose(out, x0, atol=1e-4)
    out = sdedit(oracle, s, x0, 200, sampler="ddim", steps=10, generator=g, eta=1.0)  # stochastic DDIM
    assert torch.allclose(out, x0, atol=1e-4)
    out = sdedit(oracle, s, x0, 200, sampler="ddpm", generator=g)
    assert (out - x0).abs().max() < 0.05  # ancestral noise of the last steps only
    for eta in (0.0, 0.5):
        out = sdedit(oracle, s, x0, 200, sampler="dpm", steps=10, generator=g, eta=eta)
        assert torch.allclose(out, x0, atol=1e-4)


def test_dpm_solver_samples_a_gaussian_in_few_passes():
    """With the exact denoiser of N(mu, sd^2) data, an SDEdit from strength 200 keeps that distribution; the
    second-order DPM-Solver++ gets closer to it in 20 passes than DDIM does."""
    s = CosineSchedule(1000)
    mu, sd = 0.3, 0.2

    def exact(x, t):
        ab = torch.as_tensor(s.alphas_cumprod, dtype=torch.float32)[t].view(-1, 1, 1, 1)
        x0 = mu + ab.sqrt() * sd**2 / (ab * sd**2 + 1 - ab) * (x - ab.sqrt() * mu)
        return (x - ab.sqrt() * x0) / (1 - ab).sqrt()

    start = mu + sd * torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(5))
    err = {}
    for sampler in ("dpm", "ddim"):
        out = sdedit(exact, s, start, 200, sampler=sampler, steps=20, generator=torch.Generator().manual_seed(1))
        assert abs(float(out.mean()) - mu) < 0.005
        err[sampler] = abs(float(out.std()) - sd)
    assert err["dpm"] < 0.005 and err["dpm"] < err["ddim"]


# --- UNet and weights ----------------------------------------------------------------------------------
def test_reference_unet_size_and_shapes():
    assert UNetConfig().mask_channel  # the default is the measured mask-conditioned variant
    net = UNet(UNetConfig(mask_channel=False))  # the reference: image only
    assert 0.8e6 < count_parameters(net) < 1.2e6
    out = net(torch.zeros(2, 1, 96, 96), torch.tensor([0, 999]))
    assert out.shape == (2, 1, 96, 96)
    cond = UNet(UNetConfig(width=4, mask_channel=True))
    assert cond(torch.zeros(1, 2, 32, 32), torch.tensor([5])).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.zeros(1, 1, 90, 90), torch.tensor([1]))


def test_weights_round_trip_and_clear_errors(tmp_path):
    torch.manual_seed(0)
    m = TextureModel(TINY, Normalisation(3.0, 100.0))
    p = m.save(tmp_path / "t.safetensors")
    m2 = TextureModel.load(p)
    assert m2.config == TINY and m2.normalisation == Normalisation(3.0, 100.0)
    x = torch.randn(1, TINY.unet.in_channels, 96, 96)
    with torch.no_grad():
        assert torch.equal(m.net(x, torch.tensor([3])), m2.net(x, torch.tensor([3])))
    save_weights(tmp_path / "flow.safetensors", "flow", {"w": torch.zeros(1)}, {})
    with pytest.raises(WeightsError, match="'flow' model"):
        TextureModel.load(tmp_path / "flow.safetensors")
    save_weights(tmp_path / "old.safetensors", "texture-ddpm", m.net.state_dict(), TINY.to_dict(),
                 extra={"model_version": 0, "normalisation": {"offset": 0, "scale": 1}})
    with pytest.raises(WeightsError, match="version 0"):
        TextureModel.load(tmp_path / "old.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(WeightsError, match="not a safetensors"):
        TextureModel.load(tmp_path / "bad.safetensors")


# --- painters ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_diffusion_painter_is_deterministic_and_matches_brightness(crops):
    torch.manual_seed(0)
    model = TextureModel(TINY, crops.normalisation)
    masks, br = crops.masks[:3], crops.brightness[:3]
    p = DiffusionPainter(model, "ddim", ddim_steps=4, batch_size=2)
    a = p.paint(masks, br, generator=5)
    b = p.paint(masks, br, generator=5)
    c = p.paint(masks, br, generator=6)
    assert a.shape == (3, 96, 96) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for i in range(3):
        inner = masks[i]
        assert a[i][inner].mean() == pytest.approx(br[i], rel=0.05)  # contour blur moves it a little
    from scipy import ndimage as ndi

    far = ~ndi.binary_dilation(masks, iterations=3, structure=np.ones((1, 3, 3), bool))
    assert np.all(a[far] == 0)
    assert p.n_steps(200) == 4 and p.n_steps(10) == 1
    # refresh from a previous texture uses Tf_non0 passes and stays close to it
    before = p.passes
    r = DiffusionPainter(model, "ddpm").paint(masks, br, init=crops.images[:3], generator=1)
    assert r.shape == (3, 96, 96) and p.passes == before
    with pytest.raises(InputError, match="brightness"):
        p.paint(masks, br[:2])


def test_classical_painter_from_real_statistics(crops):
    stats = ClassicalStats.fit(crops)
    assert 0.01 < stats.low_rel_std < 1 and 0.01 < stats.high_rel_std < 1
    p = ClassicalPainter.from_crops(crops)
    a = p.paint(crops.masks[:4], crops.brightness[:4], generator=np.random.default_rng(3))
    b = p.paint(crops.masks[:4], crops.brightness[:4], generator=np.random.default_rng(3))
    assert np.array_equal(a, b)
    m = crops.masks[0]
    assert a[0][m].mean() == pytest.approx(crops.brightness[0], rel=0.05)
    # its relative texture amplitude is of the order measured on the real cells
    rel = a[0][m].std() / a[0][m].mean()
    real = crops.images[0][m].std() / crops.images[0][m].mean()
    assert 0.3 < rel / real < 3


def test_per_cell_level_model_scales_training_crops_and_paints_at_requested_brightness(crops):
    from napari_bvdm.texture.train import scaled_images

    cfg = TINY.replace(cell_level=0.5)
    im = scaled_images(crops, cfg)
    assert im[3][crops.masks[3]].mean() == pytest.approx(0.5, rel=1e-4)
    model = TextureModel(cfg, crops.normalisation)
    p = DiffusionPainter(model, "ddim", ddim_steps=2)
    for init in (None, crops.images[:2]):
        out = p.paint(crops.masks[:2], crops.brightness[:2], init=init, generator=0)
        assert out[1][crops.masks[1]].mean() == pytest.approx(crops.brightness[1], rel=0.05)


def test_refresh_passes_caps_the_ddim_passes_of_a_refresh_only(crops):
    torch.manual_seed(0)
    model = TextureModel(TINY, crops.normalisation)
    p = DiffusionPainter(model, "ddim", ddim_steps=50, refresh_passes=4, tf_non0=100)
    assert p.n_steps(100, refresh=True) == 4 and p.n_steps(100) == 25 and p.n_steps(200) == 50
    masks, br = crops.masks[:2], crops.brightness[:2]
    before = p.passes
    p.paint(masks, br, init=crops.images[:2], generator=1)
    assert p.passes - before == 2 * 4  # two cells, four passes each
    assert DiffusionPainter(model, "ddim", ddim_steps=50).n_steps(100, refresh=True) == 8  # the default limit
    unlimited = DiffusionPainter(model, "ddim", ddim_steps=50, refresh_passes=None)
    assert unlimited.n_steps(100, refresh=True) == 25
    with pytest.raises(ConfigError, match="refresh_passes"):
        DiffusionPainter(model, "ddim", refresh_passes=0)
