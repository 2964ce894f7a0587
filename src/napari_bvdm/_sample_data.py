"""napari sample data: the demo video, generated on the spot with the bundled default models.

Nothing here is real data: the masks come from the bundled shape model (fitted parameters only),
the textures from the bundled texture model (or, when a build ships none, the classical renderer,
said so in the layer name), the motion from the bundled flow model. Same seed, same video — the
same main job as ``bvdm demo``, smaller so that the menu answers in seconds on a laptop CPU.
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_demo_video", "finished_demo_layers", "demo_video", "SAMPLE"]

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
        yield item  # Progress and SynthFrame alike: the GUI shows frames as they come
        if isinstance(item, Progress):
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
    """napari sample-data command: image, labels and tracks layers of the demo video.

    In a running napari the layers appear at once, empty, and the frames fill in as a worker thread paints
    them (the tracks layer is added when the video is done), so the viewer never waits for the painting.
    Without a viewer (scripts, tests) the finished video is returned.
    """
    viewer = _current_viewer()
    if viewer is not None:
        return _fill_in_background(viewer)
    return finished_demo_layers()


def finished_demo_layers() -> list[tuple[Any, dict[str, Any], str]]:
    """The demo video's image, labels and tracks layer data, painted to the end before returning."""
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


def _current_viewer():
    try:
        from napari import current_viewer
        from qtpy.QtWidgets import QApplication
    except ImportError:
        return None
    return current_viewer() if QApplication.instance() is not None else None


#: the sample's frame size and length (see :data:`SAMPLE`)
_SHAPE = (SAMPLE["shapes.frames"], SAMPLE["shapes.height"], SAMPLE["shapes.width"])


def _fill_in_background(viewer: Any) -> list[tuple[Any, dict[str, Any], str]]:
    """Empty layers now; a worker paints the frames into them (see :func:`make_demo_video`)."""
    import numpy as np
    from napari.qt.threading import create_worker

    image = np.zeros(_SHAPE, np.uint16)
    labels = np.zeros(_SHAPE, np.uint16)
    names = {"image": "BVDM demo (painting…)", "labels": "BVDM demo labels"}
    found: dict[str, Any] = {}

    def layer(kind: str):
        if kind not in found:
            try:
                found[kind] = viewer.layers[names[kind]]
            except (KeyError, ValueError):
                return None
        return found[kind]

    def on_frame(item: Any) -> None:
        if not hasattr(item, "image"):
            return
        img, lab = layer("image"), layer("labels")
        if img is None or lab is None:
            return
        if item.t == 0 and img.data.dtype != item.image.dtype:
            img.data = np.zeros(_SHAPE, item.image.dtype)
        img.data[item.t] = item.image
        lab.data[item.t] = item.labels
        if item.t == 0:
            img.reset_contrast_limits()
        img.refresh()
        lab.refresh()

    def on_done(result: Any) -> None:
        _image, _labels, masks, painter_name = result
        img, lab = layer("image"), layer("labels")
        if img is not None:
            img.name = "BVDM demo" + ("" if painter_name == "diffusion" else " (classical renderer)")
        if lab is not None:
            lab.metadata = {**lab.metadata, "lineage": masks.lineage, "kind": "TRA", "synthetic": True}
        data, graph = masks.tracks_layer_data()
        if len(data):
            viewer.add_tracks(data, graph=graph, name="BVDM demo tracks")

    worker = create_worker(_frames_then_result)
    worker.yielded.connect(on_frame)
    worker.returned.connect(on_done)
    worker.start()
    return [
        (image, {"name": names["image"], "contrast_limits": (0, 1)}, "image"),
        (labels, {"name": names["labels"], "metadata": {"kind": "TRA", "synthetic": True}}, "labels"),
    ]


def _frames_then_result():
    """Worker body: the demo video's frames as they are painted, then its result."""
    from .runtime.progress import Progress

    gen = demo_video(*_SHAPE)
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if not isinstance(item, Progress):
            yield item
