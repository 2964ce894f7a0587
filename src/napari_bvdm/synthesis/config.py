"""The one description of a synthesis run: :class:`GenerateConfig` and its sections.

The GUI, ``bvdm generate``, ``bvdm demo``, the napari sample data and ``bvdm evaluate`` all build a
:class:`GenerateConfig` and hand it to :mod:`napari_bvdm.synthesis.recipe`. Every default is defined here,
once; ``synthesis.json`` stores the resolved config, so ``bvdm generate --config synthesis.json`` makes
the same videos again. ``docs/parameters.md`` is generated from the field docs below
(``scripts/make_docs.py``).

Each field's doc is the ``#:`` comment above it (read by :func:`field_docs`).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any, Literal

from ..runtime.config import Config, ConfigError

__all__ = ["ShapesSection", "TextureSection", "FlowSection", "SceneSection", "OutputSection", "GenerateConfig",
           "field_docs", "BUNDLED", "CLASSICAL", "UNSAVED"]

#: a model field left empty means the model bundled with the package
BUNDLED = ""
#: ``texture.model`` value for the classical, model-free renderer
CLASSICAL = "classical"
#: a model field's value for a model that was used from memory (trained in the GUI, not saved)
UNSAVED = "(not saved)"


@dataclass
class ShapesSection(Config):
    """Cell masks: simulated from a shape model, or taken from a label video."""

    #: Shape model file (JSON from ``bvdm fit-shapes`` or the Shape step); empty = the bundled model, fitted
    #: on a real GOWT1 video.
    model: str = BUNDLED
    #: A label video (TIFF stack, frame folder or CTC sequence) whose masks are painted instead of simulated
    #: ones; empty = simulate.
    labels: str = ""
    #: Frames per video.
    frames: int = 30
    #: Frame height in pixels.
    height: int = 512
    #: Frame width in pixels.
    width: int = 512
    #: Cells in the first frame; empty (null) = the density of the real video the shape model was fitted on.
    cells: int | None = None
    #: With the fitted density: more (> 1) or fewer (< 1) cells per area; more cells touch each other.
    crowding: float = 1.0
    #: Cells divide at the fitted rate (when the shape model saw divisions).
    divisions: bool = True
    #: Cell outlines: ``model`` (drawn from the fitted contour model) or ``real`` (the real outlines that
    #: the shape model keeps when fitted with ``--keep-outlines``; for cells with protrusions).
    outlines: Literal["model", "real"] = "model"

    def check(self) -> None:
        self._require(1 <= self.frames <= 1_000_000, "frames", "must be between 1 and 1000000")
        self._require(16 <= self.height <= 16384, "height", "must be between 16 and 16384")
        self._require(16 <= self.width <= 16384, "width", "must be between 16 and 16384")
        self._require(self.cells is None or 0 <= self.cells <= 20000, "cells", "must be between 0 and 20000")
        self._require(0 < self.crowding <= 10, "crowding", "must be in (0, 10]")
        self._require(self.cells is None or self.crowding == 1.0, "crowding",
                      "give either cells (a count) or crowding (a factor on the fitted density), not both")


@dataclass
class TextureSection(Config):
    """How cells get their texture: the diffusion model (DDPM) and its sampler."""

    #: Texture model weights (``.safetensors`` from ``bvdm train-texture`` or the Texture step); empty = the
    #: bundled model; ``classical`` = the model-free renderer (instant, less realistic).
    model: str = BUNDLED
    #: Sampler: ``dpm`` (DPM-Solver++, second order: cells as real as the reference's in 15 passes; the
    #: measured default), ``ddim`` (first order, needs more passes) or ``ddpm`` (every step, the reference).
    sampler: Literal["dpm", "ddim", "ddpm"] = "dpm"
    #: Network passes to paint a new cell with ``dpm`` or ``ddim`` (DDIM: 50 for comparable results).
    passes: int = 15
    #: At most this many network passes to refresh a carried-over cell with ``dpm`` or ``ddim`` (DDIM: 8).
    refresh_passes: int = 4
    #: Noise level a new cell is painted from (SDEdit strength, 1..1000; the reference's Tf0 = 200).
    first_strength: int = 200
    #: Noise level a carried-over cell is refreshed from every frame (the reference's Tf_non0 is 10; 50 with
    #: ``dpm``, 100 with ``ddim``, make cells change from frame to frame as much as real GOWT1 cells do).
    refresh_strength: int = 50
    #: Arithmetic of the network: ``auto`` (bf16 where the device computes it natively: CPUs with AVX512-BF16 or
    #: AMX, CUDA GPUs of compute capability 8 or newer; else fp32), ``fp32`` or ``bf16``. The record of a
    #: dataset names the one used.
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def check(self) -> None:
        self._require(1 <= self.passes <= 1000, "passes", "must be between 1 and 1000")
        self._require(1 <= self.refresh_passes <= 1000, "refresh_passes", "must be between 1 and 1000")
        self._require(1 <= self.first_strength <= 1000, "first_strength", "must be between 1 and 1000")
        self._require(1 <= self.refresh_strength <= 1000, "refresh_strength", "must be between 1 and 1000")


@dataclass
class FlowSection(Config):
    """How cells move their texture from frame to frame."""

    #: Flow model weights (``.safetensors`` from ``bvdm train-flow`` or the Flow step); empty = the bundled
    #: model.
    model: str = BUNDLED


@dataclass
class SceneSection(Config):
    """Background, brightness and the light around cells."""

    #: A real video (with labels for best results) to fit the background, the cells' brightness and the
    #: halo around them on; empty = the shape model's own background statistics.
    real: str = ""
    #: Saved scene statistics (JSON) to use instead of fitting them on ``real``.
    stats: str = ""


@dataclass
class OutputSection(Config):
    """Which videos to write."""

    #: Number of videos.
    videos: int = 2
    #: Sequence number of the first video (01 = 1); several processes can fill one dataset with their own
    #: ranges and the same seed.
    first_video: int = 1
    #: Micrometres per pixel written into the TIFFs and the record; none: the pixel size of the real video the
    #: shape model was fitted on, when its file says it.
    pixel_size: float | None = None

    def check(self) -> None:
        self._require(self.pixel_size is None or 0 < self.pixel_size < 1e4, "pixel_size",
                      "must be a positive size in micrometres")
        self._require(self.videos >= 1, "videos", "must be at least 1")
        self._require(self.first_video >= 1, "first_video", "must be at least 1")
        self._require(self.first_video <= 99, "first_video", "must be at most 99 (sequence numbers are 01..99)")
        self._require(self.first_video + self.videos - 1 <= 99, "videos",
                      f"sequence numbers must stay within 01..99 (first_video {self.first_video})")


@dataclass
class GenerateConfig(Config):
    """A whole synthesis run: masks, texture, motion, scene and output, one seed."""

    #: Seed: the same seed gives the same videos; video number n uses seed + n - 1.
    seed: int = 0
    #: Where the networks run: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    device: str = "auto"
    shapes: ShapesSection = field(default_factory=ShapesSection)
    texture: TextureSection = field(default_factory=TextureSection)
    flow: FlowSection = field(default_factory=FlowSection)
    scene: SceneSection = field(default_factory=SceneSection)
    output: OutputSection = field(default_factory=OutputSection)

    def check(self) -> None:
        self._require(0 <= self.seed < 2**31, "seed", "must be between 0 and 2147483647")
        ok = self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")
        self._require(ok, "device", "must be auto, cpu, cuda, cuda:N or mps")
        if self.shapes.labels and self.shapes.model:
            raise ConfigError("GenerateConfig.shapes: give either a shape model or a label video, not both")

    def with_updates(self, updates: dict[str, Any]) -> GenerateConfig:
        """A copy with dotted keys changed, e.g. ``{"shapes.frames": 10, "seed": 2}``; ``None`` values are
        skipped (an option the user did not give)."""
        data = self.to_dict()
        for key, value in updates.items():
            if value is None:
                continue
            *path, last = key.split(".")
            node = data
            for part in path:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"GenerateConfig: no section {part!r} (in {key!r})")
                node = node[part]
            if last not in node:
                raise ConfigError(f"GenerateConfig: unknown setting {key!r}")
            node[last] = list(value) if isinstance(value, tuple) else value
        return GenerateConfig.from_dict(data)


def field_docs(cls: type) -> dict[str, str]:
    """``{field: doc}`` from the ``#:`` comments above each field of a dataclass."""
    src = textwrap.dedent(inspect.getsource(cls))
    lines = src.splitlines()
    docs: dict[str, str] = {}
    body = ast.parse(src).body[0]
    for node in getattr(body, "body", []):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            comment: list[str] = []
            i = node.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#:"):
                comment.insert(0, lines[i].strip()[2:].strip())
                i -= 1
            docs[node.target.id] = " ".join(comment)
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in docs.items() if k in names}


def markdown_reference() -> str:
    """The reference of every :class:`GenerateConfig` setting as Markdown tables (``docs/parameters.md``)."""
    out = []
    top = GenerateConfig()
    rows = [f"| `{name}` | {_show(getattr(top, name))} | {doc} |" for name, doc in _docs(GenerateConfig).items()
            if not dataclasses.is_dataclass(getattr(top, name))]
    out += ["| setting | default | what it does |", "|---|---|---|", *rows, ""]
    for f in dataclasses.fields(GenerateConfig):
        section = getattr(top, f.name)
        if not dataclasses.is_dataclass(section):
            continue
        cls = type(section)
        out += [f"### `{f.name}`", "", (cls.__doc__ or "").strip(), "", "| setting | default | what it does |",
                "|---|---|---|"]
        out += [f"| `{f.name}.{name}` | {_show(getattr(section, name))} | {doc} |"
                for name, doc in _docs(cls).items()]
        out.append("")
    return "\n".join(out)


def _show(value: Any) -> str:
    if value == "":
        return "(empty)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def _docs(cls: type) -> dict[str, str]:
    return {k: v.replace("``", "`") for k, v in field_docs(cls).items()}
