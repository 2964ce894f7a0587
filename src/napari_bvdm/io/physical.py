"""Physical units of a microscopy file: pixel size (µm) and frame interval (s) from TIFF, ImageJ or OME
metadata, and the TIFF resolution tags that carry a pixel size into exported files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["read_physical", "resolution_tags"]

#: micrometres per unit of the TIFF ResolutionUnit tag (2 = inch, 3 = centimetre)
_UM_PER_UNIT = {2: 25_400.0, 3: 10_000.0}
_UM_PER_NAME = {"um": 1.0, "µm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
                "micrometre": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}
_S_PER_NAME = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "min": 60.0, "h": 3600.0}


def _plausible(um: float | None) -> float | None:
    """Pixel sizes of light microscopy: 1 nm to 1 mm; anything else is a placeholder (72 dpi, 1/1)."""
    return um if um is not None and 1e-3 <= um <= 1e3 else None


def _from_ome(xml: str) -> tuple[float | None, float | None]:
    size = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', xml)
    unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', xml)
    step = re.search(r'TimeIncrement="([0-9.eE+-]+)"', xml)
    step_unit = re.search(r'TimeIncrementUnit="([^"]+)"', xml)
    um = float(size.group(1)) * _UM_PER_NAME.get(unit.group(1) if unit else "µm", 1.0) if size else None
    sec = float(step.group(1)) * _S_PER_NAME.get(step_unit.group(1) if step_unit else "s", 1.0) if step else None
    return um, sec


def read_physical(path: str | Path) -> dict[str, float]:
    """``{"pixel_size": µm, "frame_interval": s}`` from a TIFF's metadata, each only where the file has it.

    OME-XML first, then ImageJ (``unit``, ``finterval``), then the XResolution tag with a centimetre or inch
    unit. Placeholder resolutions (no unit, 72 dpi screen images) give no pixel size.
    """
    import tifffile

    out: dict[str, float] = {}
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            um = sec = None
            if tif.is_ome and tif.ome_metadata:
                um, sec = _from_ome(tif.ome_metadata)
            ij = tif.imagej_metadata or {}
            if sec is None and ij.get("finterval"):
                sec = float(ij["finterval"]) * _S_PER_NAME.get(str(ij.get("tunit", "s")), 1.0)
            if um is None and "XResolution" in page.tags:
                num, den = page.tags["XResolution"].value
                unit = page.tags["ResolutionUnit"].value if "ResolutionUnit" in page.tags else 1
                per_unit = num / den if den else 0.0
                if ij.get("unit") and per_unit:
                    um = _UM_PER_NAME.get(str(ij["unit"]).lower(), None)
                    um = um / per_unit if um else None
                elif int(unit) in _UM_PER_UNIT and per_unit:
                    um = _UM_PER_UNIT[int(unit)] / per_unit
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return out
    um = _plausible(um)
    if um is not None:
        out["pixel_size"] = round(um, 6)
    if sec is not None and sec > 0:
        out["frame_interval"] = float(sec)
    return out


def resolution_tags(pixel_size: float | None) -> dict[str, Any]:
    """``tifffile.imwrite`` keywords that store ``pixel_size`` (µm) as pixels per centimetre; none without."""
    if not pixel_size:
        return {}
    return {"resolution": (1e4 / pixel_size, 1e4 / pixel_size), "resolutionunit": 3}
