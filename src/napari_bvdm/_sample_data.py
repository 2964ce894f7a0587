"""napari sample data: the demo video, generated on the spot with the bundled default models.

Nothing here is real data: the masks come from the bundled shape model (fitted parameters only),
the textures from the bundled texture model (or, when a build ships none, the classical renderer,
said so in the layer name), the motion from the bundled flow model. Same seed, same video — the
same main job as ``bvdm demo``, smaller so that the menu answers in seconds on a laptop CPU.
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_demo_video", "demo_video", "SAMPLE"]

#: the sample's settings on top of the defaults: a small field so that the menu answers quickly on a laptop
#: (6 cells, since the bundled model's own density would leave one or two on 256 x 256; 10 passes per new cell)
SAMPLE = {"shapes.frames": 12, "shapes.height": 256, "shapes.width": 256, "shapes.cells": 6, "texture.passes": 10}


def demo_video(frames: int = 12, height: int = 256, width: int = 256, cells: int | None = 6, seed: int = 0,
               cancel=None):
    """Job generator: yields Progress / SynthFrame, returns ``(image, labels, masks, painter_name)``."""
    import numpy as np

    from .runtime.progress import Progress
    from .synthesis import recipe
    from .synthesis.config import CLASSICAL, GenerateConfig

    cfg = GenerateConfig().with_updates({**SAMPLE, "shapes.frames": frames, "shapes.height": height,
                                         "shapes.width": width, "shapes.cells": cells, "seed": seed})
    if not (_defaults() / "texture.safetensors").is_file():
        cfg = cfg.with_updates({"texture.model": CLASSICAL})
    ing = recipe.prepare(cfg)
    image = None
    labels = np.zeros((frames, height, width), np.uint16)
    gen = recipe.preview(cfg, ing, cancel=cancel)
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        if isinstance(item, Progress):
            yield item
            continue
        if image is None:
            image = np.zeros((frames, height, width), item.image.dtype)
        image[item.t] = item.image
        labels[item.t] = item.labels
    name = "classical" if cfg.texture.model == CLASSICAL else "diffusion"
    return image, labels, result["masks"], name


def _defaults():
    from pathlib import Path

    return Path(__file__).resolve().parent / "defaults"


def make_demo_video() -> list[tuple[Any, dict[str, Any], str]]:
    """napari sample-data command: image, labels and tracks layers of the demo video."""
    from .runtime.progress import run_job

    image, labels, masks, painter_name = run_job(demo_video())
    data, graph = masks.tracks_layer_data()
    suffix = "" if painter_name == "diffusion" else " (classical renderer)"
    meta = {"lineage": masks.lineage, "kind": "TRA", "synthetic": True}
    return [
        (image, {"name": f"BVDM demo{suffix}"}, "image"),
        (labels, {"name": "BVDM demo labels", "metadata": meta}, "labels"),
        (data, {"name": "BVDM demo tracks", "graph": graph}, "tracks"),
    ]
