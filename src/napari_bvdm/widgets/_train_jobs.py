"""Qt-free training jobs as the widgets run them (in a thread or in a child process).

Each takes plain, picklable arguments (arrays, config dicts, paths) and ``cancel``, writes the
weights file itself and returns its path, so a child process can run it and the GUI loads the result.
"""

from __future__ import annotations

from typing import Any

from ..runtime.progress import CancelToken, Progress

__all__ = ["texture_training", "flow_training"]


def texture_training(image: Any, labels: Any, tracks: Any, model: dict[str, Any], train: dict[str, Any],
                     path: str, resume: bool, cancel: CancelToken | None = None):
    """Cut crops, train the texture model (checkpoint next to ``path``), save it to ``path``."""
    from ..texture.crops import extract_crops
    from ..texture.model import TextureModelConfig
    from ..texture.train import TrainConfig, checkpoint_path_for, train_texture

    tc = TrainConfig.from_dict(train)
    if tc.init:  # fine-tuning: the crops and the network are the initial model's
        from ..texture.train import initial_model

        model = initial_model(tc.init).config.to_dict()
    mc = TextureModelConfig.from_dict(model)
    yield Progress(0, tc.steps, "cutting cell crops", stage="train")
    crops = extract_crops(image, labels, tracks=tracks, crop_size=mc.crop_size)
    result = yield from train_texture(crops, mc, tc, checkpoint=checkpoint_path_for(path), resume=resume,
                                      cancel=cancel)
    result.save(path)
    return str(path)


def flow_training(labels: Any, config: dict[str, Any], path: str, resume: bool,
                  cancel: CancelToken | None = None):
    """Train the flow model on a label video; it writes ``path`` (and its checkpoint) itself."""
    from ..flow.train import FlowTrainConfig, train_flow

    yield from train_flow(labels, path, FlowTrainConfig.from_dict(config), cancel=cancel, resume=resume)
    return str(path)
