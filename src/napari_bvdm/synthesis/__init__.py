"""Video synthesis: masks -> textured cells (painter + flow) -> scene on a fitted background -> CTC export.

Public API: :class:`SceneStats`, :func:`fit_scene_stats`, :func:`generate_background`,
:class:`SynthesisConfig`, :func:`generate_video`, :class:`SynthFrame`, :func:`export_dataset`.
"""

from __future__ import annotations

from .background import SceneStats, fit_scene_stats, generate_background
from .pipeline import SynthesisConfig, SynthFrame, generate_video

__all__ = ["SceneStats", "fit_scene_stats", "generate_background", "SynthesisConfig", "SynthFrame",
           "generate_video"]
