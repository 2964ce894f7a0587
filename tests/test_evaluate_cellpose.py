"""bvdm evaluate with Cellpose as the segmenter: which frames it trains on, a clear error without it, and (where
Cellpose 3 is installed, ``pip install "napari-bvdm[cellpose]"``) a tiny training that segments and cancels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_bvdm.evaluate.cellpose_seg import CellposeConfig, cellpose_pairs, require_cellpose
from napari_bvdm.evaluate.data import Pair, load_sequence, training_pairs
from napari_bvdm.evaluate.experiment import ExperimentConfig
from napari_bvdm.io.video import InputError
from napari_bvdm.runtime.config import ConfigError
from napari_bvdm.runtime.progress import Cancelled, CancelToken, run_job


def _has_cellpose() -> bool:
    try:
        require_cellpose()
    except InputError:
        return False
    return True


def test_cellpose_trains_only_on_fully_annotated_frames(gowt1):
    """GOWT1 01's SEG frames mostly hold 1-3 of ~23 cells: Cellpose, whose loss cannot skip the others, gets the
    four complete ones."""
    video = load_sequence(gowt1 / "01")
    pairs = training_pairs(video, range(46), factor=4)
    images, masks = cellpose_pairs(pairs)
    assert len(pairs) == 28 and len(images) == 4
    assert all(m.dtype == np.int32 and m.max() >= 15 for m in masks)
    assert all(i.shape == m.shape and i.dtype == np.float32 for i, m in zip(images, masks, strict=True))
    empty = Pair(np.zeros((8, 8)), np.zeros((8, 8), np.uint16))
    assert cellpose_pairs([empty]) == ([], [])


def test_segmenter_setting_is_checked():
    assert ExperimentConfig().segmenter == "segnet"
    with pytest.raises(ConfigError, match="segmenter"):
        ExperimentConfig(segmenter="stardist")
    with pytest.raises(ConfigError, match="patch"):
        CellposeConfig(patch=100)


@pytest.mark.skipif(_has_cellpose(), reason="Cellpose is installed here")
def test_without_cellpose_the_error_says_how_to_install_it(gowt1, tmp_path, capsys):
    from napari_bvdm.cli import main

    cfg = tmp_path / "cp.json"
    cfg.write_text('{"segmenter": "cellpose"}')
    code = main(["evaluate", "--real", str(gowt1 / "01"), "--config", str(cfg), "--sets", "real",
                 "-o", str(tmp_path / "ev"), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and 'pip install "napari-bvdm[cellpose]"' in err, err


def _toy_set(n: int = 3, size: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        img = rng.normal(100, 5, (size, size)).astype(np.float32)
        lab = np.zeros((size, size), np.int32)
        for k in range(6):
            cy, cx = rng.integers(12, size - 12, 2)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 64
            lab[disc & (lab == 0)] = k + 1
            img[disc] += 80
        images.append(img)
        masks.append(lab)
    return images, masks


@pytest.mark.skipif(not _has_cellpose(), reason='Cellpose 3 is not installed (pip install "napari-bvdm[cellpose]")')
def test_a_tiny_cellpose_training_segments_and_cancels():
    from napari_bvdm.evaluate.cellpose_seg import segment_cellpose, train_cellpose

    cfg = CellposeConfig(epochs=2, images_per_epoch=2, batch_size=2, patch=64)
    steps = []
    model = run_job(train_cellpose([_toy_set()], cfg, seed=0), lambda ev: steps.append(ev.step))
    assert steps == [1, 2] and model.diam_labels > 0
    masks = run_job(segment_cellpose(model, np.stack(_toy_set(2, seed=1)[0]), cfg))
    assert masks.shape == (2, 96, 96) and masks.dtype == np.uint16
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(train_cellpose([_toy_set()], cfg, seed=0, cancel=token))
