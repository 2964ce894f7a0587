"""Texture model step: train (with live loss, Cancel, resume), load/save weights, bundled default."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QPushButton, QVBoxLayout, QWidget

from ._form import ConfigForm
from ._model_step import ModelStepWidget

__all__ = ["TextureModelWidget"]

TRAIN_FIELDS = ("steps", "batch_size", "lr", "val_every", "checkpoint_every", "precision", "seed", "num_threads")
MODEL_FIELDS = ("crop_size", "T")
UNET_FIELDS = ("width", "depth", "mask_channel")


class TextureModelWidget(ModelStepWidget):
    """Dock widget "Texture model" (issue 4): the DDPM that paints cells onto masks."""

    key = "texture"
    title = "Texture model"
    model_attr = "texture_model"
    path_attr = "texture_path"
    train_api = ("napari_bvdm.texture.train", ("train_texture", "TrainConfig", "checkpoint_path_for"))
    load_api = ("napari_bvdm.texture.model", ("TextureModel", "TextureModelConfig"))
    default_name = "texture.safetensors"
    finetune_gain = ("on a cell type the bundled model never saw (Fluo-C2DL-MSC), 10 min on 1 CPU core lowered the "
                     "validation loss from 0.064 to 0.056 (10 min from scratch: 0.062)")
    finetune_minutes = 10
    cpu_seconds_per_step = 14.4  # default UNet, batch 16: 2000 steps in 7-9 h on the 2-core CPU

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.train_form = self.model_form = self.unet_form = None
        if self.train_missing is None:
            from ..texture.model import TextureModelConfig
            from ..texture.train import TrainConfig
            from ..texture.unet import UNetConfig

            col = QVBoxLayout()
            self.train_form = ConfigForm(TrainConfig, "train-texture", TRAIN_FIELDS)
            self.model_form = ConfigForm(TextureModelConfig, "texture-model", MODEL_FIELDS)
            self.unet_form = ConfigForm(UNetConfig, "texture-unet", UNET_FIELDS)
            for f in (self.train_form, self.model_form, self.unet_form):
                col.addWidget(f)
            holder = QWidget()
            holder.setLayout(col)
            col.setContentsMargins(0, 0, 0, 0)
            self.form_layout.addWidget(holder)
        self.preview_btn = QPushButton("Preview: paint real masks")
        self.preview_btn.setToolTip("paint 8 real cell masks with the model and show them under the real crops, in "
                                    "a panel beside the viewer")
        self.preview_btn.clicked.connect(self.preview)
        self.add_advanced(self.preview_btn)
        self._refresh()

    def run_buttons(self) -> list[QWidget]:
        return [*super().run_buttons(), self.preview_btn]

    def _refresh(self, *_a: Any) -> None:
        super()._refresh()
        btn = getattr(self, "preview_btn", None)
        if btn is not None:
            btn.setEnabled(self.state.texture_model is not None and self.state.video is not None
                           and not self.runner.running)

    def preview(self) -> None:
        """Real crops (top row) and the same masks painted by the model (bottom row), as one image layer."""
        from ._layers import texture_preview

        model = self.state.texture_model
        if model is None or self.state.video is None:
            return
        image, labels, tra = self._video_arrays()
        device = self.state.device

        def done(mosaic) -> None:
            from ._figure_dock import show_figure

            self.figure_panel = show_figure(self.viewer, "BVDM: texture preview", mosaic,
                                            "top row: real cells; bottom row: the same outlines painted by the "
                                            "texture model")
            self.last_preview = mosaic

        self.runner.start(lambda token: texture_preview(model, image, labels, tra, device=device, token=token),
                          done, title="Texture preview", clear_plot=False)

    def _configs(self, **extra: Any):
        from ..texture.model import TextureModelConfig

        unet = self.unet_form.config()
        mc = TextureModelConfig.from_dict({**self.model_form.values(), "unet": unet.to_dict()})
        tc = self.train_form.config(device=self.state.device, **extra)
        return mc, tc

    def _train_spec(self, resume: bool, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if extra.get("init"):
            extra = {**extra, "steps": 10**6}  # the time budget ends it
        mc, tc = self._configs(**extra)
        image, labels, tra = self._video_arrays()
        return "napari_bvdm.widgets._train_jobs:texture_training", dict(
            image=image, labels=labels, tracks=tra, model=mc.to_dict(), train=tc.to_dict(), path=self.path,
            resume=resume)

    def _load_model(self, path: str):
        from ..texture.model import TextureModel

        return TextureModel.load(path, device="cpu")

    def _default_model(self):
        from ..texture.model import TextureModel

        return TextureModel.default(device="cpu")

    def _describe(self, model: Any) -> str:
        cfg = model.config
        info = getattr(model, "info", {}) or {}
        n = sum(p.numel() for p in model.net.parameters())
        txt = (f"UNet width {cfg.unet.width}, depth {cfg.unet.depth}, {n / 1e6:.2f} M parameters, "
               f"crops {cfg.crop_size} px, T = {cfg.T}")
        if "steps" in info:
            txt += f"; trained {info['steps']} steps"
        if info.get("final_val_loss") is not None:
            txt += f", validation loss {info['final_val_loss']:.4g}"
        return txt

    def params(self) -> dict[str, Any]:
        if self.train_form is None:
            return {}
        return {**self.train_form.values(), "model": {**self.model_form.values(), "unet": self.unet_form.values()},
                "weights": self.path}

    def set_params(self, values: dict[str, Any]) -> None:
        if self.train_form is None:
            return
        self.train_form.set_values(values)
        model = values.get("model", {})
        self.model_form.set_values(model)
        self.unet_form.set_values(model.get("unet", {}))
        if values.get("weights"):
            self.set_path(values["weights"])
