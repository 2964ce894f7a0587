"""napari dock widgets of napari-bvdm (thin: parameters in, core jobs off the GUI thread, layers out).

Every public name here is a widget class taking ``napari_viewer``; napari.yaml points at them.
Qt and napari are imported only when a widget module is imported.
"""

from __future__ import annotations

__all__ = [
    "DataWidget",
    "ShapeModelWidget",
    "TextureModelWidget",
    "FlowModelWidget",
    "GenerateWidget",
    "ExportWidget",
    "WorkflowWidget",
]

_WHERE = {
    "DataWidget": "data_step",
    "ShapeModelWidget": "shape_step",
    "TextureModelWidget": "texture_step",
    "FlowModelWidget": "flow_step",
    "GenerateWidget": "generate_step",
    "ExportWidget": "export_step",
    "WorkflowWidget": "workflow",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(name)
