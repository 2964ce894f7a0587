"""napari sample data: the demo video, generated on the spot with the bundled default models.

Nothing here is real data: the masks come from the bundled shape model (fitted parameters only),
the textures from the bundled texture model (or, when a build ships none, the classical renderer,
said so in the layer name), the motion from the bundled flow model. Same seed, same video — the
same main job as ``bvdm demo``, smaller so that the menu answers in seconds on a laptop CPU.
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_demo_video", "demo_video"]

# 6 cells on 256 x 256 (GOWT1's own density would leave one or two cells in so small a field)
DEMO = {"frames": 12, "height": 256, "width": 256, "cells": 6, "seed": 0, "sampler": "ddim", "ddim_steps": 10}


def demo_video(frames: int = DEMO["frames"], height: int = DEMO["height"], width: int = DEMO["width"],
               cells: int | None = DEMO["cells"], seed: int = DEMO["seed"], cancel=None):
    """Job generator: yields Progress / SynthFrame, returns ``(image, labels, masks, painter_name)``."""
    import numpy as np

    from .flow import FlowModel
    from .runtime.progress import Progress
    from .shapes import ShapeModel, SimulationConfig, simulate_masks
    from .synthesis import SynthesisConfig, generate_video
    from .texture.painter import ClassicalPainter, DiffusionPainter
    from .widgets._recipe import scene_from_shape_model

    shape = ShapeModel.default()
    flow = FlowModel.load(_defaults() / "flow.safetensors")
    texture_file = _defaults() / "texture.safetensors"
    if texture_file.is_file():
        from .texture.model import TextureModel

        painter: Any = DiffusionPainter(TextureModel.load(texture_file), DEMO["sampler"],
                                        ddim_steps=DEMO["ddim_steps"])
        painter_name = "diffusion"
    else:
        painter = ClassicalPainter(normalisation=None, crop_size=96)
        painter_name = "classical"
    scene = scene_from_shape_model(shape, painter)
    if painter_name == "classical":
        painter.normalisation = scene.norm
    masks = yield from simulate_masks(shape, SimulationConfig(frames=frames, height=height, width=width, cells=cells,
                                                                       seed=seed),
                                      cancel=cancel)
    image = None
    labels = np.zeros((frames, height, width), np.uint16)
    gen = generate_video(masks.labels, painter, flow, scene, SynthesisConfig(seed=seed), lineage=masks.lineage,
                         brightness=masks.brightness, cancel=cancel)
    while True:
        try:
            item = next(gen)
        except StopIteration:
            break
        if isinstance(item, Progress):
            yield item
            continue
        if image is None:
            image = np.zeros((frames, height, width), item.image.dtype)
        image[item.t] = item.image
        labels[item.t] = item.labels
    return image, labels, masks, painter_name


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
