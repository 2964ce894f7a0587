"""Flow network, warping, composition, mask pairs and the FlowModel file (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_bvdm.flow import FlowConfig, FlowModel, FlowNet, compose, warp
from napari_bvdm.flow.pairs import is_tracked, link_by_overlap, load_label_video, mask_pairs
from napari_bvdm.io.video import InputError
from napari_bvdm.runtime.config import ConfigError
from napari_bvdm.runtime.weights import WeightsError, save_weights


def _shift(dy: float, dx: float, n: int = 1, h: int = 32, w: int = 32) -> torch.Tensor:
    f = torch.zeros(n, 2, h, w)
    f[:, 0], f[:, 1] = dy, dx
    return f


def test_warp_integer_shift_is_exact_and_nearest_matches_bilinear():
    img = torch.rand(1, 1, 32, 32)
    out = warp(img, _shift(2, -3))
    # warped(y, x) = img(y + 2, x - 3)
    assert torch.allclose(out[0, 0, :30, 3:], img[0, 0, 2:, :-3], atol=1e-6)
    assert torch.allclose(warp(img, _shift(2, -3), mode="nearest"), out, atol=1e-6)
    assert torch.allclose(warp(img, _shift(0, 0)), img, atol=1e-6)


def test_compose_of_two_shifts_is_their_sum():
    a, b = _shift(1.5, 0.5), _shift(-0.5, 2.0)
    c = compose(a, b)
    assert torch.allclose(c[..., 4:-4, 4:-4], _shift(1.0, 2.5)[..., 4:-4, 4:-4], atol=1e-5)


def test_flownet_has_voxelmorph_size_and_starts_near_identity():
    net = FlowNet()
    n = sum(p.numel() for p in net.parameters())
    assert 80_000 < n < 120_000  # reference FPM: about 0.1 M parameters
    x = torch.zeros(2, 1, 96, 96)
    u = net(x, x)
    assert u.shape == (2, 2, 96, 96)
    assert u.abs().max() < 1e-2


def test_flow_config_checks_crop_multiple():
    with pytest.raises(ConfigError, match="crop_size"):
        FlowConfig(crop_size=100)


def test_model_save_load_roundtrip_and_wrong_kind(tmp_path):
    torch.manual_seed(0)
    m = FlowModel(extra={"median_cell_area": 123.0})
    for p in m.net.parameters():
        p.data.normal_(0, 0.05)
    a = np.zeros((2, 48, 48), bool)
    a[:, 10:30, 12:28] = True
    b = np.roll(a, 3, axis=2)
    path = m.save(tmp_path / "flow.safetensors")
    m2 = FlowModel.load(path)
    assert m2.extra["median_cell_area"] == 123.0
    assert np.allclose(m.predict(a, b), m2.predict(a, b), atol=1e-6)
    # crops not divisible by 16 are padded internally
    assert m2.predict(a[:, :40, :40], b[:, :40, :40]).shape == (2, 2, 40, 40)
    other = save_weights(tmp_path / "tex.safetensors", "texture-ddpm", {"w": torch.zeros(1)}, {})
    with pytest.raises(WeightsError, match="texture-ddpm"):
        FlowModel.load(other)


def test_mask_pairs_from_real_gowt1_tracks(gowt1):
    labels, lineage, kind = load_label_video(gowt1 / "01", lazy=True)
    assert kind == "TRA" and lineage is not None
    sub = np.asarray(labels[:6])
    pairs = mask_pairs(sub, 96, tracked=True)
    # every track present in consecutive frames gives one pair per frame step
    expected = sum(len(set(np.unique(sub[t])) & set(np.unique(sub[t + 1])) - {0}) for t in range(5))
    assert len(pairs) == expected
    assert pairs.prev.shape[1:] == (96, 96)
    inter = (pairs.prev & pairs.cur).sum((1, 2))
    dice_id = 2 * inter / (pairs.prev.sum((1, 2)) + pairs.cur.sum((1, 2)))
    assert 0.85 < dice_id.mean() < 1.0  # centred crops: consecutive masks overlap a lot but not fully
    tr, va = pairs.split(0.3, seed=1)
    assert set(tr.track).isdisjoint(set(va.track)) and len(tr) + len(va) == len(pairs)


def test_per_frame_ids_are_detected_and_linked(hela):
    import tifffile

    files = sorted((hela / "02_ERR_SEG").glob("*.tif"))[:6]
    per_frame = np.stack([tifffile.imread(f) for f in files])
    assert not is_tracked(per_frame)
    tracks, lineage = link_by_overlap(per_frame)
    assert is_tracked(tracks)
    assert tracks.dtype == np.uint16
    # objects are kept, just renumbered
    assert ((tracks > 0) == (per_frame > 0)).all()
    with pytest.warns(UserWarning, match="linking"):
        mask_pairs(per_frame, 96)


def test_link_by_overlap_detects_a_division():
    lab = np.zeros((3, 40, 40), np.uint16)
    lab[0, 10:30, 10:30] = 1
    lab[1, 10:30, 10:30] = 5
    lab[2, 10:19, 10:30] = 1
    lab[2, 21:30, 10:30] = 2
    tracks, lineage = link_by_overlap(lab)
    assert lineage.tolist() == [[1, 0, 1, 0], [2, 2, 2, 1], [3, 2, 2, 1]]


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(InputError, match="at least 2 frames"):
        mask_pairs(np.ones((1, 8, 8), np.uint16))
    lab = np.zeros((3, 20, 20), np.uint16)
    lab[0, 2:5, 2:5] = 1
    lab[1, 10:14, 10:14] = 2
    with pytest.raises(InputError, match="one frame only"):
        mask_pairs(lab, 16, tracked=True)
    big = np.zeros((2, 200, 200), np.uint16)
    big[:, 10:150, 10:150] = 1
    big[:, 170:180, 170:180] = 2
    p = mask_pairs(big, 32, tracked=True)
    assert p.skipped_too_large == 1 and len(p) == 1
    with pytest.raises(InputError, match="does not exist"):
        load_label_video(tmp_path / "nope")
