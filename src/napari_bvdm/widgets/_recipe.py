"""Qt-free: the Generate step's form and the workflow state turned into a run of the core recipe.

The GUI never assembles the pipeline: it fills a :class:`~napari_bvdm.synthesis.config.GenerateConfig` from
the form (:func:`GenerateParams.to_config`), passes its models in memory to
:func:`napari_bvdm.synthesis.recipe.prepare`, and runs :func:`~napari_bvdm.synthesis.recipe.preview` (Generate
step) or :func:`~napari_bvdm.synthesis.recipe.generate` (Export step) with it. Both make the same video 01 for
the same settings.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..runtime.progress import CancelToken, Progress
from ..synthesis.config import CLASSICAL, GenerateConfig

__all__ = ["GenerateParams", "missing_for_generation", "ingredients", "generate_job", "export_job", "derived"]

_DEFAULT = GenerateConfig()
#: the workflow state's model path for a model bundled with the package
BUNDLED_DEFAULT = "bundled default"
#: file names of models kept only in memory, written beside an exported dataset
_MODEL_FILES = {"shapes": ("shape_model", "shape_path", "shape_model.json"),
                "texture": ("texture_model", "texture_path", "texture.safetensors"),
                "flow": ("flow_model", "flow_path", "flow.safetensors")}


@dataclass
class GenerateParams:
    """The Generate step's form: the everyday settings of a :class:`GenerateConfig` (same defaults)."""

    frames: int = _DEFAULT.shapes.frames
    height: int = _DEFAULT.shapes.height
    width: int = _DEFAULT.shapes.width
    cells: int | None = _DEFAULT.shapes.cells  # None = fitted density
    crowding: float = _DEFAULT.shapes.crowding  # with cells auto: factor on the fitted density
    divisions: bool = _DEFAULT.shapes.divisions
    outlines: Literal["model", "real"] = _DEFAULT.shapes.outlines
    seed: int = _DEFAULT.seed
    painter: Literal["diffusion", "classical"] = "diffusion"  # classical: instant, no learning
    sampler: Literal["dpm", "ddim", "ddpm"] = _DEFAULT.texture.sampler
    passes: int = _DEFAULT.texture.passes
    first_strength: int = _DEFAULT.texture.first_strength
    refresh_strength: int = _DEFAULT.texture.refresh_strength
    preview_frames: int = 3
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, *, strict: bool = False) -> GenerateParams:
        from ..runtime.config import ConfigError

        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown and strict:
            raise ConfigError(f"GenerateParams: unknown setting(s) {unknown}")
        p = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "extra"})
        p.check()
        return p

    def check(self) -> None:
        from ..runtime.config import ConfigError

        if self.preview_frames < 1:
            raise ConfigError(f"GenerateParams.preview_frames = {self.preview_frames!r}: must be >= 1")
        self.to_config()  # every other check is the config's own

    def to_config(self, state: Any = None, n_videos: int = 1) -> GenerateConfig:
        """The run's config; with ``state``, the model files and real video it was made from are named."""
        values: dict[str, Any] = {
            "shapes.frames": self.frames, "shapes.height": self.height, "shapes.width": self.width,
            "shapes.cells": self.cells, "shapes.crowding": self.crowding if self.cells is None else 1.0,
            "shapes.divisions": self.divisions, "shapes.outlines": self.outlines, "seed": self.seed,
            "texture.sampler": self.sampler, "texture.passes": self.passes,
            "texture.first_strength": self.first_strength, "texture.refresh_strength": self.refresh_strength,
            "output.videos": n_videos,
        }
        if self.painter == "classical":
            values["texture.model"] = CLASSICAL
        if state is not None:
            values["device"] = getattr(state, "device", None) or "auto"
            for key, attr in (("shapes.model", "shape_path"), ("flow.model", "flow_path")):
                values[key] = _file_or_empty(getattr(state, attr, ""))
            if self.painter != "classical":
                values["texture.model"] = _file_or_empty(getattr(state, "texture_path", ""))
            video = getattr(state, "video", None)
            values["scene.real"] = str(getattr(video, "source", "") or "") if video is not None else None
        return GenerateConfig().with_updates(values)


def _file_or_empty(path: str) -> str:
    """A model's file for the record: "" for the bundled one, :data:`UNSAVED` for one only in memory."""
    from pathlib import Path

    from ..synthesis.config import UNSAVED

    if path == BUNDLED_DEFAULT:
        return ""
    return str(path) if path and Path(path).is_file() else UNSAVED


def missing_for_generation(state: Any, params: GenerateParams) -> list[str]:
    """What the workflow still lacks for these parameters (empty = ready)."""
    out = []
    if state.shape_model is None:
        out.append("a shape model (step 2)")
    if params.painter == "diffusion" and state.texture_model is None:
        out.append("a texture model (step 3) or the classical painter")
    if state.flow_model is None:
        out.append("a flow model (step 4)")
    return out


def _labels_stamp(video: Any) -> tuple:
    """A cheap fingerprint of the video's labels: napari edits label layers in place (painting)."""
    stamp: list[Any] = [tuple(video.seg_frames)]
    for kind, arr in sorted(video.labels.items()):
        if isinstance(arr, np.ndarray):
            stamp.append((kind, arr.shape, zlib.crc32(np.ascontiguousarray(arr).view(np.uint8).reshape(-1))))
        else:  # lazy arrays are read-only
            stamp.append((kind, id(arr)))
    return tuple(stamp)


def derived(state: Any, name: str, compute: Callable[[], Any], *key: Any) -> Any:
    """``compute()``, a statistic of the real video, cached on ``state`` until the video or its labels change.

    The halo (seconds on a CTC sequence), the scene statistics and the classical painter's crops are
    computed once per video instead of on every preview; a new video, or labels painted in napari, start
    afresh.
    """
    video = getattr(state, "video", None)
    extras = getattr(state, "extras", None)
    if video is None or not isinstance(extras, dict):
        return compute()
    stamp = _labels_stamp(video)
    cache = extras.get("derived")
    if cache is None or cache[0]() is not video or cache[1] != stamp:
        cache = extras["derived"] = (weakref.ref(video), stamp, {})
    k = (name, *key)
    if k not in cache[2]:
        cache[2][k] = compute()
    return cache[2][k]


def ingredients(state: Any, cfg: GenerateConfig):
    """The recipe's ingredients from the workflow's models in memory and its real video (statistics cached)."""
    from ..synthesis import recipe

    crops = None
    video = getattr(state, "video", None)
    if cfg.texture.model == CLASSICAL and video is not None and video.image is not None:
        dense = video.dense_labels()
        if dense is not None:
            from ..texture.crops import extract_crops

            crop = state.texture_model.crop_size if state.texture_model is not None else 96
            crops = derived(state, "crops", lambda: extract_crops(np.asarray(video.image), np.asarray(dense[1]),
                                                                  crop_size=crop), crop)
    ing = recipe.prepare(cfg, shape_model=state.shape_model, texture_model=state.texture_model,
                         flow_model=state.flow_model, real_video=video, crops=crops,
                         memo=lambda name, compute, *key: derived(state, name, compute, *key))
    for section, (_attr, _path, name) in _MODEL_FILES.items():  # bundled models in memory: their file is known
        if getattr(cfg, section).model == "" and section not in ing.files and (recipe.DEFAULTS / name).is_file():
            ing.files[section] = recipe.DEFAULTS / name
    return ing


def generate_job(state: Any, params: GenerateParams, *, frames: int | None = None,
                 cancel: CancelToken | None = None):
    """Job: the first ``frames`` (default all) of video 01 of the form's settings; yields Progress and SynthFrame.

    The video is kept on ``state`` as a draft (:func:`~napari_bvdm.synthesis.recipe.start_video`): a later
    preview, the whole video and the export continue it instead of painting its frames again, as long as the
    settings, the models and the real video stay the same.
    """
    from ..synthesis import recipe
    from ._layers import tracks_layer_data

    cfg = params.to_config(state)
    n = int(frames or cfg.shapes.frames)
    yield Progress(0, n, "preparing painter and background", stage="generate")
    key = _draft_key(state, params)  # the labels' checksum: computed once per run
    draft = current_draft(state, params, key)
    if draft is None:
        draft = yield from recipe.start_video(cfg, ingredients(state, cfg), cancel=cancel)
        state.extras["draft"] = (key, draft)
    yield from draft.run(n, cancel=cancel)
    made = np.asarray(draft.labels[:n])
    tracks = tracks_layer_data(made, draft.lineage)
    n_tracks = int(len(np.unique(made))) - int((made == 0).any())
    daughters = int(sum(1 for lab, b, _e, p in draft.lineage if p > 0 and b < n))
    info = draft.result or {}
    return {"draft": draft, "tracks": tracks, "frames": n, "n_tracks": n_tracks, "daughters": daughters,
            "info": info, "config": cfg, "params": params.to_dict()}


def _draft_key(state: Any, params: GenerateParams) -> tuple:
    video = getattr(state, "video", None)
    return (tuple(sorted(params.to_dict().items(), key=lambda kv: kv[0])),
            *(id(getattr(state, a, None)) for a in ("shape_model", "texture_model", "flow_model")),
            id(video), _labels_stamp(video) if video is not None else None,
            getattr(state, "shape_path", None), getattr(state, "texture_path", None), getattr(state, "flow_path", None))


def current_draft(state: Any, params: GenerateParams, key: tuple | None = None):
    """The kept draft of video 01 when it was made with exactly these settings, models and real video
    (``key``: :func:`_draft_key` of them, when the caller has it)."""
    kept = getattr(state, "extras", {}).get("draft")
    if kept is None or kept[0] != (key if key is not None else _draft_key(state, params)):
        return None
    return kept[1]


def export_job(state: Any, params: GenerateParams, out_dir: str, n_videos: int, *, overwrite: bool = False,
               cancel: CancelToken | None = None):
    """Job: write ``n_videos`` synthetic videos as a CTC dataset (validated on write); returns its folder."""
    from ..synthesis import recipe

    draft = current_draft(state, params)  # before the models get their file names below
    cfg = params.to_config(state, n_videos)
    cfg = _save_unsaved_models(state, cfg, Path(out_dir))
    if draft is not None:
        state.extras["draft"] = (_draft_key(state, params), draft)  # still the same video
    yield Progress(0, n_videos, "preparing painter and background", stage="export")
    return (yield from recipe.generate(cfg, out_dir, ingredients(state, cfg), overwrite=overwrite, resume=not overwrite,
                                       source="gui", cancel=cancel, drafts={1: draft} if draft is not None else None))


def _same_model_file(a: Path, b: Path) -> bool:
    """Two model files hold the same model (safetensors: same tensors and metadata, in any header order)."""
    if a.suffix != ".safetensors":
        return a.read_bytes() == b.read_bytes()
    from safetensors import safe_open

    def content(path: Path) -> tuple[dict, dict]:
        with safe_open(str(path), framework="numpy") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118

    (ma, ta), (mb, tb) = content(a), content(b)
    return ma == mb and ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta)


def _save_unsaved_models(state: Any, cfg: GenerateConfig, out_dir: Path) -> GenerateConfig:
    """Models used from memory are written into ``out_dir/models`` so the dataset's record names real files.

    An existing file there is reused when it holds the same model, and refused otherwise.
    """
    import tempfile

    from ..io.video import InputError
    from ..synthesis.config import UNSAVED

    updates: dict[str, str] = {}
    for section, (attr, path_attr, name) in _MODEL_FILES.items():
        model = getattr(state, attr, None)
        if getattr(cfg, section).model != UNSAVED or model is None:
            continue
        target = out_dir / "models" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".model-") as tmp:
            fresh = model.save(Path(tmp) / name)
            if target.exists():
                if not _same_model_file(target, fresh):
                    raise InputError(f"the folder {out_dir} holds videos made with another {section} model "
                                     f"({target}); choose a new folder for this export")
            else:
                fresh.replace(target)
        setattr(state, path_attr, str(target))
        updates[f"{section}.model"] = str(target)
    return cfg.with_updates(updates) if updates else cfg
