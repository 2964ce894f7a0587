from __future__ import annotations

import numpy as np
from PIL import Image

from napari_bvdm.preview import overlay, write_preview


def test_preview_strip_and_gif(tmp_path):
    frames, labels = [], []
    for t in range(4):
        img = np.full((40, 50), 100, np.uint16)
        lab = np.zeros((40, 50), np.uint16)
        lab[10:20, 5 + 5 * t : 15 + 5 * t] = 3
        img[lab > 0] = 900
        frames.append(img)
        labels.append(lab)
    png, gif = write_preview(frames, labels, tmp_path / "p.png", tmp_path / "p.gif", max_strip=3)
    strip = np.asarray(Image.open(png))
    assert strip.shape == (80, 150, 3)
    g = Image.open(gif)
    assert g.n_frames == 4
    rgb = overlay(frames[0], labels[0], 100, 900)
    edge = rgb[10, 5]
    assert not (edge[0] == edge[1] == edge[2])  # outline is coloured
    assert tuple(rgb[0, 0]) == (0, 0, 0) and tuple(rgb[15, 10]) == (255, 255, 255)
