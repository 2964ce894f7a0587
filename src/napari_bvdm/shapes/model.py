"""The fitted shape and population model: one versioned JSON file, no pickle.

The file holds the fit configuration, where the data came from, and the fitted parameters (small
arrays stored as JSON lists): the contour PCA, empirical quantile tables of size, brightness and
motion, lag-1 correlations of their changes over time, population and division rates, and the
background statistics of the image. No pixel data is stored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.config import Config, ConfigError
from ..runtime.files import usual_permissions

__all__ = ["ShapeModel", "FitConfig", "ShapeModelError", "FORMAT", "FORMAT_VERSION", "N_QUANTILES",
           "PAUSE_EPS", "MAX_OUTLINES"]

FORMAT = "napari-bvdm-shape-model"
FORMAT_VERSION = 1
PAUSE_EPS = 1e-6  # a centroid step below this (px) is a pause
N_QUANTILES = 101  # quantile tables at 0, 1, ..., 100 %
MAX_OUTLINES = 2000  # stored real outlines at most (about 9 kB each in the JSON file at 192 vertices)

STAGES = ("interphase", "prophase", "prometaphase", "metaphase", "anaphase", "telophase")


class ShapeModelError(ConfigError):
    """A shape-model file is unreadable, of another kind or version, or holds invalid values."""


@dataclass
class FitConfig(Config):
    """Settings of :func:`napari_bvdm.shapes.fit_shape_model`.

    Attributes
    ----------
    n_points : contour points per object (the method uses 60; CTC masks carry finer outline detail).
    variance_share : PCA modes are kept until they explain this share of the shape variance;
        0 = automatic (the share among 0.9 ... 0.999 whose sampled outlines match the real solidity best).
    max_shape_frames : at most this many (evenly spaced) annotated frames are measured for shapes.
    min_object_area : smaller objects are ignored (debris), in pixels.
    match_max_distance : for unlinked labels, the largest centroid step (px) accepted by
        nearest-centroid matching; 0 = automatic (1.5 x the median equivalent diameter).
    mitosis_frames : frames before a division labelled as mitotic (stage "metaphase").
    telophase_frames : frames after a division labelled "telophase" in the daughters.
    calibration_frames : at most this many frames in the simulations (of the fitted size, density and
        length) that calibrate the step and size samplers so that measured simulated steps and sizes
        match the real ones (0 = no calibration).
    keep_outlines : store up to this many real cell outlines (size-normalised, aligned polygons; no
        pixels, no positions) so that simulations can draw real shapes (``SimulationConfig.outlines =
        "real"``): for cells whose outlines a radial model cannot draw, such as MSC's thin, bent
        protrusions. 0 = none (the bundled model).
    outline_points : vertices per stored outline (equal arc-length steps).
    """

    n_points: int = 90
    variance_share: float = 0.0
    max_shape_frames: int = 80
    min_object_area: int = 20
    match_max_distance: float = 0.0
    mitosis_frames: int = 2
    telophase_frames: int = 2
    calibration_frames: int = 100
    keep_outlines: int = 0
    outline_points: int = 192

    def check(self) -> None:
        self._require(8 <= self.n_points <= 360, "n_points", "must be between 8 and 360")
        self._require(0 <= self.variance_share <= 1, "variance_share", "must be in (0, 1], or 0 for automatic")
        self._require(self.max_shape_frames >= 1, "max_shape_frames", "must be at least 1")
        self._require(self.min_object_area >= 1, "min_object_area", "must be at least 1")
        self._require(self.match_max_distance >= 0, "match_max_distance", "must be >= 0")
        self._require(self.mitosis_frames >= 0, "mitosis_frames", "must be >= 0")
        self._require(self.telophase_frames >= 0, "telophase_frames", "must be >= 0")
        self._require(0 <= self.calibration_frames <= 1000, "calibration_frames", "must be between 0 and 1000")
        self._require(0 <= self.keep_outlines <= MAX_OUTLINES, "keep_outlines", f"must be between 0 and {MAX_OUTLINES}")
        self._require(16 <= self.outline_points <= 1024, "outline_points", "must be between 16 and 1024")


# Parameter schema: name -> (kind, extra). Used to validate files on load (hand edits, other versions).
_QUANT = ("quantiles", None)
_SCHEMA: dict[str, dict[str, tuple[str, Any]]] = {
    "shape": {
        "n_points": ("int+", None),
        "mean": ("vec", "n_points"),
        "components": ("mat", "n_points"),
        "variances": ("vec+", "n_modes"),
        "explained": ("vec+", "n_modes"),
        "rho": ("unit", None),
        "mode_rho": ("vec+", "n_modes"),
        "roughness_quantiles": _QUANT,
        "elongation": ("float+", None),
    },
    "area": {"quantiles": _QUANT, "target_quantiles": _QUANT, "sampler_quantiles": _QUANT, "rho": ("unit", None),
             "max_log_step": ("float+", None)},
    "eccentricity": {"quantiles": _QUANT},
    "solidity": {"quantiles": _QUANT},
    "brightness": {
        "quantiles": _QUANT,
        "rho": ("unit", None),
        "stage_factor": ("vec+", 6),
        "area_corr": ("unit", None),
    },
    "motion": {
        "step_quantiles": _QUANT,
        "moving_step_quantiles": _QUANT,
        "pause_probability": ("prob", None),
        "sampler_step_quantiles": _QUANT,
        "step_rho": ("unit", None),
        "turn_quantiles": _QUANT,
        "orientation_drift": ("float+", None),
    },
    "population": {
        "cells_first_frame": ("float+", None),
        "cells_mean": ("float+", None),
        "density": ("float+", None),
        "growth": ("float", None),
        "entry_rate": ("float+", None),
        "end_rate": ("float+", None),
        "nn_quantiles": _QUANT,
        "spacing": ("float+", None),
        "density_knots": ("vec+", 21),
    },
    "division": {
        "enabled": ("bool", None),
        "rate": ("float+", None),
        "count": ("int+", None),
        "area_ratio": ("float+", None),
        "distance_ratio": ("float+", None),
        "mitosis_frames": ("int+", None),
        "telophase_frames": ("int+", None),
    },
    "background": {"level": ("float", None), "noise": ("float+", None)},
}
# Fields added after format version 1 was first written: a file without them reads with these values.
_OPTIONAL: dict[tuple[str, str], Any] = {
    ("motion", "pause_probability"): 0.0,
    ("population", "spacing"): 1.0,
    ("shape", "elongation"): 1.0,
    ("area", "max_log_step"): 0.0,  # 0 = no limit on a cell's area change per frame
    ("brightness", "area_corr"): 0.0,  # models fitted without it: brightness independent of size
    ("motion", "moving_step_quantiles"): ("motion", "step_quantiles"),  # same as all steps
}


@dataclass
class ShapeModel:
    """A fitted statistical shape, motion and population model.

    Attributes
    ----------
    params : dict
        Sections ``shape``, ``area``, ``eccentricity``, ``solidity``, ``brightness``, ``motion``,
        ``population``, ``division``, ``background`` (see ``docs/shapes.md``), and ``outlines`` when
        real outlines were kept (``FitConfig.keep_outlines``); arrays are numpy.
    config : FitConfig
        The settings it was fitted with.
    source : dict
        Provenance: path, label kinds used, frame and object counts, canvas size.
    normalisation : dict or None
        :class:`napari_bvdm.texture.normalisation.Normalisation` as a dict (brightness units).
    """

    params: dict[str, dict[str, Any]]
    config: FitConfig = field(default_factory=FitConfig)
    source: dict[str, Any] = field(default_factory=dict)
    normalisation: dict[str, Any] | None = None

    # --- convenience ------------------------------------------------------------------------
    @property
    def n_modes(self) -> int:
        return int(len(self.params["shape"]["variances"]))

    @property
    def n_points(self) -> int:
        return int(self.params["shape"]["n_points"])

    @property
    def outlines(self) -> np.ndarray | None:
        """The stored real outlines, (k, n, 2) size-normalised aligned (x, y) vertices, or ``None``."""
        sec = self.params.get("outlines")
        return None if not sec else sec["polygons"]

    @property
    def divisions_enabled(self) -> bool:
        return bool(self.params["division"]["enabled"])

    def shape_from_coefficients(self, z: np.ndarray) -> np.ndarray:
        """Size-normalised radii for standardised PCA coefficients ``z`` (n_modes,)."""
        s = self.params["shape"]
        r = s["mean"] + (np.asarray(z) * np.sqrt(s["variances"])) @ s["components"]
        return np.maximum(r, 0.05)

    # --- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from .. import __version__

        def enc(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, (np.floating, np.integer, np.bool_)):
                return v.item()
            if isinstance(v, dict):
                return {k: enc(x) for k, x in v.items()}
            return v

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": "shape-model",
            "package_version": __version__,
            "config": self.config.to_dict(),
            "source": enc(self.source),
            "normalisation": self.normalisation,
            "params": enc(self.params),
        }

    def save(self, path: str | Path) -> Path:
        """Write the model as one JSON file, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        usual_permissions(tmp)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text + "\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "shape model") -> ShapeModel:
        _check_kind(data, where)
        ver = data.get("format_version")
        if not isinstance(ver, int) or ver > FORMAT_VERSION or ver < 1:
            raise ShapeModelError(
                f"{where} has shape-model format version {ver!r} (written by napari-bvdm "
                f"{data.get('package_version', '?')}); this version reads version {FORMAT_VERSION}: "
                "update napari-bvdm or re-fit the model"
            )
        try:
            config = FitConfig.from_dict(data.get("config") or {})
        except ConfigError as e:
            raise ShapeModelError(f"{where}: invalid config: {e}") from None
        params = _validate_params(data.get("params"), where)
        norm = data.get("normalisation")
        if norm is not None:
            if not isinstance(norm, dict) or not {"offset", "scale"} <= set(norm):
                raise ShapeModelError(f"{where}: 'normalisation' must hold offset and scale")
            if not (_finite(norm["offset"]) and _finite(norm["scale"]) and norm["scale"] > 0):
                raise ShapeModelError(f"{where}: normalisation offset/scale must be finite numbers, scale > 0")
        src = data.get("source") or {}
        if not isinstance(src, dict):
            raise ShapeModelError(f"{where}: 'source' must be a mapping")
        return cls(params=params, config=config, source=src, normalisation=norm)

    @classmethod
    def load(cls, path: str | Path) -> ShapeModel:
        """Read and validate a model file; a clear :class:`ShapeModelError` for anything wrong."""
        path = Path(path)
        if not path.is_file():
            raise ShapeModelError(f"shape model file {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ShapeModelError(f"{path} is not valid JSON ({e}); was it edited by hand?") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def default(cls) -> ShapeModel:
        """The bundled model fitted on Fluo-N2DH-GOWT1 01 (see docs/shapes.md)."""
        return cls.load(Path(__file__).resolve().parents[1] / "defaults" / "shape_model.json")

    # --- plots ---------------------------------------------------------------------------------
    def figure(self, figsize: tuple[float, float] = (12, 7)):
        """A matplotlib :class:`~matplotlib.figure.Figure` of the model (no pyplot, no GUI backend):
        mean outline with the first modes at +-2 sd, and the fitted distributions."""
        from matplotlib.figure import Figure

        from .contours import angles

        p = self.params
        fig = Figure(figsize=figsize, layout="constrained")
        axes = fig.subplots(2, 3).ravel()
        ang = angles(self.n_points)
        ax = axes[0]
        for j in range(min(3, self.n_modes)):
            for sgn, ls in ((2.0, "-"), (-2.0, "--")):
                z = np.zeros(self.n_modes)
                z[j] = sgn
                r = self.shape_from_coefficients(z)
                ax.plot(np.append(r * np.cos(ang), r[0] * np.cos(ang[0])),
                        np.append(r * np.sin(ang), r[0] * np.sin(ang[0])), ls, lw=1,
                        color=f"C{j + 1}", label=f"mode {j + 1} {'+' if sgn > 0 else '-'}2 sd")
        r = p["shape"]["mean"]
        ax.plot(np.append(r * np.cos(ang), r[0] * np.cos(ang[0])), np.append(r * np.sin(ang), r[0] * np.sin(ang[0])),
                "k", lw=2, label="mean")
        ax.set_aspect("equal")
        ax.set_title("outline (size-normalised, major axis vertical)")
        ax.legend(fontsize="x-small")
        levels = np.linspace(0, 1, N_QUANTILES)
        for ax, (title, q) in zip(axes[1:5], [("area (px)", p["area"]["quantiles"]),
                                              ("eccentricity", p["eccentricity"]["quantiles"]),
                                              ("step length (px/frame)", p["motion"]["step_quantiles"]),
                                              ("brightness (normalised)", p["brightness"]["quantiles"])],
                                  strict=True):
            ax.plot(q, levels)
            ax.set_title(title)
            ax.set_ylabel("cumulative share")
        ax = axes[5]
        knots = np.asarray(p["population"]["density_knots"])
        n = int(self.source.get("n_frames", len(knots)) or len(knots))
        area = float(self.source.get("height", 1) or 1) * float(self.source.get("width", 1) or 1)
        ax.plot(np.linspace(0, n - 1, len(knots)), knots * area)
        ax.set_title("cells per frame (smoothed)")
        ax.set_xlabel("frame")
        fig.suptitle("shape model")
        return fig

    # --- human-readable summary -------------------------------------------------------------
    def summary(self) -> str:
        p = self.params
        s, pop, div, mot = p["shape"], p["population"], p["division"], p["motion"]

        def q(name: str, section: dict[str, Any], key: str = "quantiles", fmt: str = ".3g") -> str:
            t = section[key]
            return f"{name}: median {t[50]:{fmt}} (5-95 %: {t[5]:{fmt}} - {t[95]:{fmt}})"

        src = self.source
        lines = [
            f"Shape model fitted on {src.get('path') or '(in memory)'}",
            f"  data: {src.get('n_frames', '?')} frames of {src.get('height', '?')} x {src.get('width', '?')}; "
            f"tracks from {src.get('track_kind', '?')}, shapes from {src.get('shape_kind', '?')} "
            f"({src.get('n_shape_objects', '?')} objects in {src.get('n_shape_frames', '?')} frames)",
            f"  contour: {s['n_points']} points, {self.n_modes} PCA modes explain "
            f"{100 * float(np.sum(s['explained'])):.1f} % (first mode {100 * float(s['explained'][0]):.1f} %); "
            f"frame-to-frame correlation {s['rho']:.2f} (variance-weighted)"
            if self.n_modes
            else f"  contour: {s['n_points']} points, mean shape only (no variation in the data)",
            "  " + q("area (px)", p["area"], fmt=".0f") + f"; frame-to-frame correlation {p['area']['rho']:.2f}"
            + (f"; change per frame at most x{math.exp(p['area']['max_log_step']):.2f}"
               if p["area"]["max_log_step"] > 0 else ""),
            "  " + q("eccentricity", p["eccentricity"], fmt=".2f"),
            "  " + q("solidity", p["solidity"], fmt=".3f"),
            "  " + q("brightness (normalised)", p["brightness"], fmt=".3f")
            + f"; rank correlation with the cell's size {p['brightness']['area_corr']:+.2f}",
            "  " + q("step (px/frame)", mot, "step_quantiles", fmt=".2f")
            + f"; persistence (mean cos turn) {float(np.mean(np.cos(mot['turn_quantiles']))):.2f}"
            + (f"; paused (step exactly 0) in {100 * mot['pause_probability']:.1f} % of frames"
               if mot["pause_probability"] > 0 else ""),
            f"  cells per frame: {pop['cells_mean']:.1f} (first frame {pop['cells_first_frame']:.0f}); "
            f"growth {pop['growth']:+.4f}/frame; entries {pop['entry_rate'] * 1e3:.3f} per 1000 border px "
            f"per frame; interior track ends {pop['end_rate']:.4f} per cell per frame",
            "  " + q("nearest-neighbour distance (px)", pop, "nn_quantiles", fmt=".1f"),
        ]
        if div["enabled"]:
            lines.append(
                f"  divisions: {div['count']} in the data, rate {div['rate']:.4f} per cell per frame; "
                f"daughter area {div['area_ratio']:.2f} x mother, daughters {div['distance_ratio']:.2f} "
                "mother diameters apart"
            )
        else:
            lines.append("  divisions: off (none in the data)")
        if self.outlines is not None:
            lines.append(f"  real outlines kept: {len(self.outlines)} of {self.outlines.shape[1]} vertices "
                         "(simulations with outlines='real' draw these)")
        lines.append(
            f"  background: level {p['background']['level']:.3f}, noise {p['background']['noise']:.3f} (normalised)"
        )
        return "\n".join(lines)


# Other napari-bvdm JSON files a shape model can be confused with, by their "format" field (the values of
# synthesis.export.RECORD_FORMAT, widgets._settings.RUN_SETTINGS_FORMAT and runtime.weights.FORMAT).
_OTHER_FORMATS = {
    "napari-bvdm synthesis record": "a synthesis record (the synthesis.json of a generated dataset)",
    "napari-bvdm-run-settings": "a run-settings file (saved by the GUI for `bvdm ... --settings`)",
    "napari-bvdm-weights": "model-weights metadata",
}
# Configuration files (no "format" field), by keys only they have.
_CONFIG_KEYS = (
    ({"shapes", "texture", "flow", "scene", "output"}, "a `bvdm generate` configuration (docs/parameters.md)"),
    ({"unet", "crop_size"}, "a texture-model configuration"),
    ({"steps", "batch_size", "lr"}, "a training configuration"),
    ({"level", "noise", "row_profile"}, "saved scene statistics"),
)


def _check_kind(data: Any, where: str) -> None:
    """Refuse a file that is not a shape model, saying what it is instead.

    Raises
    ------
    ShapeModelError
        ``data`` is no JSON object, has another ``format``, or has this format and another ``kind``.
    """
    fmt = data.get("format") if isinstance(data, dict) else None
    kind = data.get("kind", "shape-model") if isinstance(data, dict) else None
    if fmt == FORMAT and kind == "shape-model":
        return
    what = _what_file_is(data)
    raise ShapeModelError(
        f"{where} is {what}, not a napari-bvdm shape model: give the .json file that `bvdm fit-shapes` writes "
        f"(format \"{FORMAT}\"){_where_the_model_is(data)}"
    )


def _what_file_is(data: Any) -> str:
    """A few words on what a JSON document that is not a shape model is."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}"
    fmt, kind = data.get("format"), data.get("kind")
    if fmt == FORMAT:
        return f"a napari-bvdm file of kind {kind!r}"
    if isinstance(fmt, str):
        return _OTHER_FORMATS.get(fmt, f"a file of format {fmt!r}" + (f" (kind {kind!r})" if kind else ""))
    if "params" in data and isinstance(data["params"], dict) and "shape" in data["params"]:
        return "shape-model parameters without the file header (\"format\", \"format_version\")"
    keys = set(data)
    if keys and keys <= {f.name for f in dataclasses.fields(FitConfig)}:
        return "fit-shapes settings (FitConfig)"
    for needed, what in _CONFIG_KEYS:
        if needed <= keys:
            return what
    shown = ", ".join(sorted(map(str, keys))[:6]) + (", ..." if len(keys) > 6 else "")
    return f"a JSON object without a \"format\" field (keys: {shown or 'none'})"


def _where_the_model_is(data: Any) -> str:
    """For a synthesis record: the shape model it names; else nothing."""
    if not isinstance(data, dict):
        return ""
    models = (data.get("run") or {}).get("models") if isinstance(data.get("run"), dict) else None
    shapes = models.get("shapes") if isinstance(models, dict) else None
    path = shapes.get("path") if isinstance(shapes, dict) else None
    return f"; this dataset was made with the shape model {path}" if path else ""


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _validate_params(params: Any, where: str) -> dict[str, dict[str, Any]]:
    """Check a model file's ``params`` against ``_SCHEMA``; lists become float64 arrays.

    Fields listed in ``_OPTIONAL`` that are absent get their defaults.

    Raises
    ------
    ShapeModelError
        A section or field is missing, of the wrong type or shape, or out of range.
    """
    if not isinstance(params, dict):
        raise ShapeModelError(f"{where}: 'params' is missing or not a mapping")
    out: dict[str, dict[str, Any]] = {}
    dims: dict[str, int | None] = {"n_points": None, "n_modes": None}
    for section, fields in _SCHEMA.items():
        out[section] = _validate_section(params, section, fields, where, dims)
    outlines = params.get("outlines")
    if outlines is not None:
        out["outlines"] = {"polygons": _validate_outlines(outlines, where)}
    _check_shape_section(out["shape"], where)
    return out


def _validate_section(
    params: dict[str, Any], section: str, fields: dict[str, tuple[str, Any]], where: str,
    dims: dict[str, int | None],
) -> dict[str, Any]:
    """The checked fields of ``params[section]``; sets ``dims["n_points"]`` from the shape section."""
    sec = params.get(section)
    if not isinstance(sec, dict):
        raise ShapeModelError(f"{where}: section params.{section} is missing")
    o: dict[str, Any] = {}
    for name, (kind, extra) in fields.items():
        key = f"params.{section}.{name}"
        if name not in sec and (section, name) in _OPTIONAL:
            sec = _with_default(params, sec, section, name)
        if name not in sec or sec[name] is None:
            raise ShapeModelError(f"{where}: {key} is missing (hand-edited or truncated file?)")
        v = _validate_value(sec[name], kind, extra, f"{where}: {key}", dims)
        if name == "n_points" and section == "shape":
            dims["n_points"] = v
        o[name] = v
    return o


def _with_default(params: dict[str, Any], sec: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    """A copy of ``sec`` with the ``_OPTIONAL`` default of ``name`` filled in."""
    default = _OPTIONAL[(section, name)]
    sec = dict(sec)
    sec[name] = params[default[0]].get(default[1]) if isinstance(default, tuple) else default
    return sec


def _validate_value(v: Any, kind: str, extra: Any, label: str, dims: dict[str, int | None]) -> Any:
    """One checked field value; ``label`` (``"<where>: <key>"``) starts every error message."""
    if kind in ("int+", "bool", "float", "float+", "unit", "prob"):
        return _validate_scalar(v, kind, label)
    return _validate_array(v, kind, extra, label, dims)


def _validate_scalar(v: Any, kind: str, label: str) -> Any:
    """An ``int+`` or ``bool`` unchanged, or a finite number of a float kind as a float."""
    if kind == "int+":
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ShapeModelError(f"{label} = {v!r} must be a non-negative integer")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise ShapeModelError(f"{label} = {v!r} must be true or false")
        return v
    if not _finite(v):
        raise ShapeModelError(f"{label} = {v!r} must be a finite number")
    if kind == "prob" and not (0 <= v <= 1):
        raise ShapeModelError(f"{label} = {v!r} must be a probability in [0, 1]")
    if kind == "float+" and v < 0:
        raise ShapeModelError(f"{label} = {v!r} must be >= 0")
    if kind == "unit" and not (-1 <= v <= 1):
        raise ShapeModelError(f"{label} = {v!r} must be a correlation in [-1, 1]")
    return float(v)


def _validate_array(v: Any, kind: str, extra: Any, label: str, dims: dict[str, int | None]) -> np.ndarray:
    """A finite float64 array of the shape ``kind`` asks for; a ``mat`` sets ``dims["n_modes"]``."""
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ShapeModelError(f"{label} must be a list of numbers") from None
    if not np.all(np.isfinite(arr)):
        raise ShapeModelError(f"{label} holds non-finite values")
    n_points = dims["n_points"]
    if kind == "quantiles":
        if arr.shape != (N_QUANTILES,) or np.any(np.diff(arr) < 0):
            raise ShapeModelError(f"{label} must be {N_QUANTILES} non-decreasing quantiles, got shape {arr.shape}")
    elif kind in ("vec", "vec+"):
        want = dims.get(extra, extra)
        if arr.ndim != 1 or (want is not None and len(arr) != want):
            raise ShapeModelError(f"{label} must be a list of {want} numbers, got shape {arr.shape}")
        if kind == "vec+" and np.any(arr < 0):
            raise ShapeModelError(f"{label} must not hold negative values")
    elif kind == "mat":
        if arr.size == 0:
            arr = arr.reshape(0, n_points or 0)
        if arr.ndim != 2 or arr.shape[1] != n_points:
            raise ShapeModelError(f"{label} must be (modes, {n_points}), got shape {arr.shape}")
        dims["n_modes"] = arr.shape[0]
    return arr


def _validate_outlines(outlines: Any, where: str) -> np.ndarray:
    """``params.outlines.polygons`` as a finite ``(outlines, vertices, 2)`` float64 array."""
    poly = outlines.get("polygons") if isinstance(outlines, dict) else None
    try:
        arr = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        raise ShapeModelError(f"{where}: params.outlines.polygons must be a list of outlines") from None
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 3 or arr.shape[2] != 2:
        raise ShapeModelError(
            f"{where}: params.outlines.polygons must be (outlines, vertices, 2), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ShapeModelError(f"{where}: params.outlines.polygons holds non-finite values")
    return arr


def _check_shape_section(shape: dict[str, Any], where: str) -> None:
    """Range checks on the contour model that need several of its fields."""
    if shape["n_points"] < 8:
        raise ShapeModelError(f"{where}: params.shape.n_points must be at least 8")
    if np.any(shape["mode_rho"] > 1):
        raise ShapeModelError(f"{where}: params.shape.mode_rho must hold correlations in [0, 1]")
    if np.any(shape["mean"] <= 0):
        raise ShapeModelError(f"{where}: params.shape.mean radii must be positive")
