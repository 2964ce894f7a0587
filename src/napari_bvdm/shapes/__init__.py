"""Statistical shape, motion and population model: fit on real labels, simulate annotated mask videos.

Public API::

    from napari_bvdm.shapes import (FitConfig, ShapeModel, fit_shape_model,
                                    SimulationConfig, MaskVideo, simulate_masks, compare)
"""

from .compare import ComparisonReport, compare, population_features
from .fit import fit_shape_model
from .model import FitConfig, ShapeModel, ShapeModelError
from .simulate import MaskVideo, SimulationConfig, simulate_masks

__all__ = [
    "FitConfig",
    "ShapeModel",
    "ShapeModelError",
    "fit_shape_model",
    "SimulationConfig",
    "MaskVideo",
    "simulate_masks",
    "compare",
    "ComparisonReport",
    "population_features",
]
