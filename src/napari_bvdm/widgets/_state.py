"""The workflow's shared, evented state: one object per viewer, seen by every BVDM widget.

Widgets never talk to each other directly: the Data step sets ``video``, the Shape step sets
``shape_model``, and so on; every widget listens to ``state.events.<field>`` and updates its
"ready / missing" status. The state holds results of core jobs, never Qt objects.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from psygnal import evented

__all__ = ["WorkflowState", "get_state", "STEPS"]

# ordered workflow steps: (key, title, state field that makes the step ready)
STEPS: tuple[tuple[str, str, str], ...] = (
    ("data", "1. Data", "video"),
    ("shape", "2. Shape model", "shape_model"),
    ("texture", "3. Texture model", "texture_model"),
    ("flow", "4. Flow model", "flow_model"),
    ("generate", "5. Generate", "generated"),
    ("export", "6. Export", "export_path"),
)


@evented
@dataclass(eq=False)
class WorkflowState:
    """Everything the steps hand to each other.

    Attributes
    ----------
    video : napari_bvdm.io.video.Video or None
        The real video picked in the Data step (image + labels + lineage).
    image_layer, labels_layer : str
        Names of the viewer layers the video came from.
    device : str
        Device for every step: ``"auto"``, ``"cpu"``, ``"cuda:N"`` or ``"mps"``.
    shape_model, texture_model, flow_model : object or None
        Fitted / trained / loaded core models.
    shape_path, texture_path, flow_path : str
        Files the models were saved to or loaded from ("" when only in memory).
    generated : object or None
        The last generated (preview or full) video result.
    export_path : str
        Folder of the last successful export.
    """

    video: Any = None
    image_layer: str = ""
    labels_layer: str = ""
    device: str = "auto"
    shape_model: Any = None
    shape_path: str = ""
    texture_model: Any = None
    texture_path: str = ""
    flow_model: Any = None
    flow_path: str = ""
    generated: Any = None
    export_path: str = ""
    extras: dict = field(default_factory=dict)

    def is_ready(self, step: str) -> bool:
        """Whether workflow step ``step`` (a key of :data:`STEPS`) has its result."""
        for key, _title, attr in STEPS:
            if key == step:
                value = getattr(self, attr)
                return bool(value) if isinstance(value, str) else value is not None
        raise KeyError(step)


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FALLBACK: dict[int, WorkflowState] = {}


def _unwrap(viewer: Any) -> Any:
    # napari hands plugin widgets a PublicOnlyProxy; key the state on the real viewer
    return getattr(viewer, "__wrapped__", viewer)


def get_state(viewer: Any) -> WorkflowState:
    """The :class:`WorkflowState` shared by all BVDM widgets of ``viewer`` (created on first use)."""
    real = _unwrap(viewer)
    try:
        state = _STATES.get(real)
        if state is None:
            state = _STATES[real] = WorkflowState()
        return state
    except TypeError:  # not weak-referenceable
        return _FALLBACK.setdefault(id(real), WorkflowState())
