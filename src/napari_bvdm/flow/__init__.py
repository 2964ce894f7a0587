"""Flow prediction model: a small VoxelMorph-style UNet that maps a cell's previous mask to its current one.

Public API: :class:`FlowNet`, :func:`warp`, :func:`compose`, :class:`FlowModel`, :class:`FlowConfig`,
:func:`train_flow`, :class:`FlowTrainConfig`, :func:`mask_pairs`.
"""

from __future__ import annotations

from .model import FlowConfig, FlowModel
from .net import FlowNet, compose, warp

__all__ = ["FlowNet", "warp", "compose", "FlowModel", "FlowConfig"]
