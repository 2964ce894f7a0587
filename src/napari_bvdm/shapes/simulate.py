"""Simulate annotated mask videos from a fitted :class:`~napari_bvdm.shapes.model.ShapeModel`.

Every cell carries a small state that evolves frame by frame:

- shape: standardised PCA coefficients, an AR(1) process with the fitted lag-1 correlation (smooth
  shape change; the stationary distribution is the fitted PCA Gaussian); or, with ``outlines="real"``,
  one of the model's stored real outlines drawn at birth (mirrored at random) and deformed by a smooth
  radial field (harmonics 1-3 of the angle, AR(1) coefficients at the fitted shape correlation);
- size and brightness: Gaussian-copula AR(1) processes whose marginals are the fitted quantile tables;
- orientation: a random walk with the fitted drift;
- motion: step length from the fitted step quantiles (copula AR(1)) and direction turned by a fitted
  turning angle, then pairwise repulsion (k-d tree) so that cells do not pile up; with the fitted pause
  probability a cell is frozen for a frame (same outline and place; neighbours are pushed around it);
- cell cycle: the time to division is drawn at birth (geometric with the fitted rate per cell and
  frame), so the last ``mitosis_frames`` of a mother are labelled mitotic and the first
  ``telophase_frames`` of its daughters telophase; daughters take the mother's shape and orientation,
  a fitted share of its area, new ids, parent = mother, and start at the mother's E + 1.

Frames are painted one at a time (older cells first, no pixel painted twice), so no two cells
overlap, and a cell that has no pixel left in a frame ends its track in the frame before: every track
is visible in every frame of its span and the CTC export is valid by construction. Frames can be
streamed to a ``sink`` instead of kept, or kept as :class:`SimulatedLabels` that make each frame again
when it is read (``keep_frames=False``): memory stays that of one frame for a video of any length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats
from scipy.spatial import cKDTree

from ..runtime.config import Config, ConfigError
from ..runtime.progress import CancelToken, Job, Progress
from ..runtime.seeding import numpy_rng
from .contours import fill_polygon, outline_to_polygon, rasterise
from .model import N_QUANTILES, ShapeModel

__all__ = ["SimulationConfig", "MaskVideo", "SimulatedLabels", "simulate_masks", "max_cells", "check_cells_fit"]

_LEVELS = np.linspace(0.0, 1.0, N_QUANTILES)
MAX_ID = 65535
#: how many times more cells than fit side by side a frame may start with (the simulator lets cells cover
#: each other); beyond that a request is refused before simulating
CROWDING_LIMIT = 4.0


@dataclass
class SimulationConfig(Config):
    """Settings of :func:`simulate_masks`.

    Attributes
    ----------
    frames, height, width : size of the video.
    cells : cells in the first frame; ``None`` = the fitted first-frame density times the canvas area.
    density_scale : multiplies the fitted cell-count curve (first frame and trend): > 1 simulates a more
        crowded population, with more cells close to or touching each other (only with ``cells=None``).
    seed : same seed, same video.
    divisions : allow divisions (only when the model has them).
    division_rate : divisions per cell per frame; ``None`` = fitted.
    border_entry : cells enter through the border at the fitted rate.
    density_control : steer entries (and border exits) so the cell count follows the fitted trend
        (growth over the fitted video's length, constant after), instead of drifting freely.
    motion_scale : multiplies the step lengths.
    repulsion_iterations : push-apart passes per frame.
    min_gap : extra distance (px) kept between the equivalent circles of two cells.
    outlines : ``"model"`` draws outlines from the radial contour PCA (star-shaped); ``"real"`` draws
        each cell's outline from the real outlines stored in the model (fitted with
        ``FitConfig.keep_outlines``), for cells with protrusions a radial model cannot draw.
    outline_wobble : with ``outlines="real"``, the standard deviation of the log radial deformation
        that makes a real outline change smoothly over time (0 = rigid outlines).
    brightness_follows_size : couple each cell's brightness to its size with the model's fitted
        normal-score correlation (``brightness.area_corr``; real MSC about -0.4: larger, spread cells are
        dimmer), keeping both marginals; False (or a model fitted without the correlation) draws them independently.
    """

    frames: int = 50
    height: int = 512
    width: int = 512
    cells: int | None = None
    density_scale: float = 1.0
    seed: int = 0
    divisions: bool = True
    division_rate: float | None = None
    border_entry: bool = True
    density_control: bool = True
    motion_scale: float = 1.0
    repulsion_iterations: int = 10
    min_gap: float = 1.0
    outlines: Literal["model", "real"] = "model"
    outline_wobble: float = 0.1
    brightness_follows_size: bool = True

    def check(self) -> None:
        self._require(self.frames >= 1, "frames", "must be at least 1")
        self._require(16 <= self.height <= 16384, "height", "must be between 16 and 16384")
        self._require(16 <= self.width <= 16384, "width", "must be between 16 and 16384")
        self._require(self.cells is None or 0 <= self.cells <= 20000, "cells", "must be between 0 and 20000")
        self._require(0 < self.density_scale <= 10, "density_scale", "must be in (0, 10]")
        self._require(self.cells is None or self.density_scale == 1.0, "density_scale",
                      "give either cells (a count) or density_scale (a factor on the fitted density), not both")
        self._require(self.division_rate is None or 0 <= self.division_rate <= 0.5, "division_rate",
                      "must be between 0 and 0.5 per cell per frame")
        self._require(0 <= self.motion_scale <= 100, "motion_scale", "must be between 0 and 100")
        self._require(0 <= self.repulsion_iterations <= 50, "repulsion_iterations", "must be between 0 and 50")
        self._require(self.min_gap >= 0, "min_gap", "must be >= 0")
        self._require(self.outlines in ("model", "real"), "outlines", "must be 'model' or 'real'")
        self._require(0 <= self.outline_wobble <= 1, "outline_wobble", "must be between 0 and 1")


@dataclass
class MaskVideo:
    """A simulated, fully annotated mask video.

    Attributes
    ----------
    labels : (T, H, W) uint16 track ids: an array, a :class:`SimulatedLabels` (``keep_frames=False``), or
        ``None`` when the frames went to a ``sink``.
    lineage : (N, 4) int64 CTC rows ``L B E P`` sorted by L.
    brightness : per track, mean intensity per frame of its span (normalised units).
    stage : per track, stage index per frame of its span (0 interphase, 3 mitotic, 5 telophase).
    centroids : per track, (n, 2) centroid (y, x) per frame of its span (for a napari Tracks layer).
    paused : per track, per frame of its span: frozen in that frame (the model's pause probability).
    background : ``level`` and ``noise`` of the fitted image, normalised units.
    normalisation : the model's normalisation as a dict, or ``None``.
    config : the simulation settings.
    """

    labels: np.ndarray | None
    lineage: np.ndarray
    brightness: dict[int, np.ndarray]
    stage: dict[int, np.ndarray]
    centroids: dict[int, np.ndarray]
    background: dict[str, float]
    normalisation: dict[str, Any] | None
    config: SimulationConfig
    stats: dict[str, float] = field(default_factory=dict)
    paused: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.config.frames)

    def tracks_layer_data(self) -> tuple[np.ndarray, dict[int, list[int]]]:
        """``(data, graph)`` for ``napari.layers.Tracks``: rows ``track_id, t, y, x``, graph daughter->[mother]."""
        rows = []
        for lab, b, _e, _p in self.lineage:
            c = self.centroids[int(lab)]
            t = np.arange(b, b + len(c))
            rows.append(np.column_stack([np.full(len(c), lab), t, c]))
        data = np.concatenate(rows) if rows else np.zeros((0, 4))
        graph = {int(lab): [int(p)] for lab, _b, _e, p in self.lineage if p > 0}
        return data, graph

    def to_video(self):
        """As a :class:`~napari_bvdm.io.video.Video` with ``labels["TRA"]`` and the lineage (no image)."""
        from ..io.video import Video

        if self.labels is None:
            raise ValueError("the frames were streamed to a sink and are not kept in memory")
        return Video(image=None, labels={"TRA": self.labels}, lineage=self.lineage, source="simulated")


# ---------------------------------------------------------------------------------------------
def _typical_area(model: ShapeModel) -> float:
    """Median cell area (px) of the model's size table."""
    return max(float(_from_q(np.asarray(model.params["area"]["sampler_quantiles"], float), 0.5)), 1.0)


def max_cells(model: ShapeModel, height: int, width: int) -> int:
    """The most cells a ``height`` x ``width`` first frame can start with: :data:`CROWDING_LIMIT` times the
    frame area over the model's median cell area (at least 1)."""
    return max(1, int(CROWDING_LIMIT * height * width / _typical_area(model)))


def check_cells_fit(model: ShapeModel, cfg: SimulationConfig) -> None:
    """Refuse a first frame with far more cells than the canvas holds, before anything is simulated.

    Raises
    ------
    ConfigError
        Naming the most cells that fit.
    """
    if model is None:
        return
    if cfg.cells is not None:
        n = int(cfg.cells)
    else:
        n = int(round(float(model.params["population"]["density_knots"][0]) * cfg.height * cfg.width
                      * cfg.density_scale))
    most = max_cells(model, cfg.height, cfg.width)
    if n <= most:
        return
    what = f"{n} cells" if cfg.cells is not None else f"{n} cells (the fitted density x {cfg.density_scale:g})"
    raise ConfigError(f"{what} do not fit on a {cfg.height} x {cfg.width} frame: cells of this shape model cover "
                      f"about {_typical_area(model):.0f} px each, so at most {most} fit; ask for {most} cells or "
                      "fewer, or for a larger frame")


def _elongate(radii: np.ndarray, factor: float) -> np.ndarray:
    """Scale the elongation (second angular harmonic) of an outline's radii by ``factor``."""
    if factor == 1.0 or len(radii) < 6:
        return radii
    spec = np.fft.rfft(radii)
    spec[2] *= factor
    return np.fft.irfft(spec, len(radii))


class _Cell:
    __slots__ = ("id", "parent", "birth", "div_at", "pos", "heading", "g_step", "g_area", "g_bright", "z", "g_rough",
                 "orient", "bright", "stage", "cent", "dead", "paused", "pauses", "leaving", "area_now", "outline",
                 "mirror", "wobble")

    def __init__(self, cid: int, parent: int, birth: int):
        self.id, self.parent, self.birth = cid, parent, birth
        self.div_at = 1 << 60
        self.bright: list[float] = []
        self.stage: list[int] = []
        self.cent: list[tuple[float, float]] = []
        self.dead = False
        self.paused = False
        self.pauses: list[bool] = []
        self.leaving = False
        self.area_now: float | None = None  # the drawn area when its change per frame is limited


def _from_q(q: np.ndarray, u: np.ndarray | float) -> np.ndarray:
    return np.interp(u, _LEVELS, q)


def _to_g(q: np.ndarray, value: float) -> float:
    """The Gaussian score of ``value`` under the quantile table ``q``."""
    u = np.interp(value, q, _LEVELS) if q[-1] > q[0] else 0.5
    return float(stats.norm.ppf(np.clip(u, 1e-4, 1 - 1e-4)))


class _Simulator:
    def __init__(self, model: ShapeModel, cfg: SimulationConfig):
        check_cells_fit(model, cfg)
        self.m, self.cfg = model, cfg
        p = model.params
        self.p = p
        self.rng = numpy_rng(cfg.seed, "simulate-masks")
        self.h, self.w = cfg.height, cfg.width
        div = p["division"]
        rate = div["rate"] if cfg.division_rate is None else cfg.division_rate
        self.div_rate = float(rate) if (cfg.divisions and (div["enabled"] or cfg.division_rate)) else 0.0
        self.spacing = float(p["population"]["spacing"])
        self.m_frames = int(div["mitosis_frames"])
        self.t_frames = int(div["telophase_frames"])
        self.next_id = 1
        self.rows: list[list[int]] = []
        self.cells: list[_Cell] = []
        self.n_div = 0
        self.cell_frames = 0
        pop = p["population"]
        src = model.source
        self.growth = float(pop["growth"])
        self.fit_frames = int(src.get("n_frames", cfg.frames) or cfg.frames)
        # the fitted cell-count curve (density per pixel at 21 knots over the fitted video), scaled to
        # this canvas; with ``cells`` given, the curve is rescaled to start there
        self.knots = np.asarray(pop["density_knots"], dtype=np.float64) * self.h * self.w * cfg.density_scale
        if cfg.cells is not None:
            self.knots = self.knots * (cfg.cells / self.knots[0] if self.knots[0] > 0 else 0.0)
            if not self.knots.any():
                self.knots[:] = cfg.cells
        self.n0 = int(cfg.cells) if cfg.cells is not None else int(round(self.knots[0]))
        self.entry_mean = float(pop["entry_rate"]) * 2.0 * (self.h + self.w) if cfg.border_entry else 0.0
        self.end_rate = float(pop["end_rate"])
        s = p["shape"]
        self.sqrt_var = np.sqrt(s["variances"])
        self.comps = s["components"]
        self.mean = _elongate(np.asarray(s["mean"], dtype=np.float64), float(s["elongation"]))
        self.k = len(self.sqrt_var)
        self.mode_rho = np.asarray(s["mode_rho"], dtype=np.float64)
        self.mode_noise = np.sqrt(1 - self.mode_rho**2)
        self.max_log_step = float(p["area"]["max_log_step"])
        self.bank = None
        if cfg.outlines == "real":
            bank = model.outlines
            if bank is None:
                raise ConfigError(
                    "outlines='real' needs real outlines in the shape model: fit it with keep_outlines > 0 "
                    "(`bvdm fit-shapes --keep-outlines 500`)"
                )
            self.bank = np.asarray(bank, dtype=np.float64)
            self.bank_angle = np.arctan2(self.bank[..., 1], self.bank[..., 0])  # (k, n)
            self.wobble_sd = float(cfg.outline_wobble) / np.sqrt(3.0)  # 3 harmonics: log-radius sd = wobble

    # --- state helpers ---------------------------------------------------------------------------
    def _new_id(self) -> int:
        cid = self.next_id
        if cid > MAX_ID:
            raise ConfigError(
                f"more than {MAX_ID} tracks: CTC labels are uint16; simulate fewer frames or cells, "
                "or switch density_control on"
            )
        self.next_id += 1
        return cid

    def _schedule(self, c: _Cell, t: int, min_frames: int) -> None:
        if self.div_rate <= 0:
            return
        d = int(self.rng.geometric(self.div_rate))
        c.div_at = t + max(d - 1, min_frames)

    def _spawn(self, t: int, pos: np.ndarray, heading: float | None = None, parent: int = 0) -> _Cell:
        c = _Cell(self._new_id(), parent, t)
        r = self.rng
        c.pos = np.asarray(pos, dtype=np.float64)
        c.heading = float(r.uniform(-np.pi, np.pi)) if heading is None else heading
        c.g_step = float(r.standard_normal())
        c.g_area = float(r.standard_normal())
        c.g_bright = float(r.standard_normal())
        c.z = r.standard_normal(self.k)
        c.g_rough = float(r.standard_normal())
        c.orient = float(r.uniform(-np.pi, np.pi))
        if self.bank is not None:  # drawn only in this mode, so "model" videos keep their random stream
            c.outline = int(r.integers(len(self.bank)))
            c.mirror = bool(r.uniform() < 0.5)
            c.wobble = self.wobble_sd * r.standard_normal(6)
        self._schedule(c, t, self.m_frames + 1)
        return c

    def area(self, c: _Cell) -> float:
        if c.area_now is not None:
            return c.area_now
        return float(_from_q(self.p["area"]["sampler_quantiles"], stats.norm.cdf(c.g_area)))

    def _step_area(self, c: _Cell, g: float) -> None:
        """Move the cell's size score to ``g``; the drawn area follows, at most ``max_log_step`` per frame.

        The size score is an AR(1) Gaussian mapped through the fitted area quantiles; where that table has a
        steep stretch (GOWT1: 3 % of nuclei at 600-800 px, the rest above 2000 px), a small move of the
        score would otherwise shrink a nucleus to a third in one frame and back a few frames later.
        """
        cap = self.max_log_step
        before = self.area(c) if cap > 0 else None
        c.g_area = g
        c.area_now = None
        if before is not None:
            target = self.area(c)
            c.area_now = float(before * np.exp(np.clip(np.log(target / before), -cap, cap)))

    def radii(self, c: _Cell) -> np.ndarray:
        if not self.k:
            return self.mean
        s = float(_from_q(self.p["shape"]["roughness_quantiles"], stats.norm.cdf(c.g_rough)))
        return self.mean + (s * c.z * self.sqrt_var) @ self.comps

    def outline(self, c: _Cell) -> np.ndarray:
        """The cell's real outline (aligned, size-normalised), mirrored and deformed by its wobble."""
        xy = self.bank[c.outline].copy()
        ang = self.bank_angle[c.outline]
        if c.mirror:
            xy[:, 0] = -xy[:, 0]
            ang = np.pi - ang
        k = np.arange(1, 4)[:, None]
        log_f = c.wobble[:3] @ np.cos(k * ang) + c.wobble[3:] @ np.sin(k * ang)
        return xy * np.exp(log_f)[:, None]

    def pixels(self, c: _Cell, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (rr, cc) of the cell's outline in this frame, clipped to ``shape``."""
        if self.bank is None:
            return rasterise(self.radii(c), self.area(c), c.orient, (c.pos[0], c.pos[1]), shape)
        return fill_polygon(*outline_to_polygon(self.outline(c), self.area(c), c.orient, (c.pos[0], c.pos[1])), shape)

    def target(self, t: int) -> float:
        return float(np.interp(min(t, self.fit_frames - 1), np.linspace(0, self.fit_frames - 1, 21), self.knots))

    # --- one frame -----------------------------------------------------------------------------------
    def init(self) -> None:
        n = self.n0
        pos = np.column_stack([self.rng.uniform(0, self.h, n), self.rng.uniform(0, self.w, n)])
        self.cells = [self._spawn(0, p) for p in pos]
        if n > 1:  # stratified sizes for the first cells: each video starts with the fitted size distribution
            u = (self.rng.permutation(n) + self.rng.uniform(size=n)) / n
            for c, g in zip(self.cells, stats.norm.ppf(u), strict=True):
                c.g_area = float(g)
        for c in self.cells:  # the first cells are anywhere in their cycle: memoryless draw from t = 0
            if self.div_rate > 0:
                c.div_at = int(self.rng.geometric(self.div_rate)) - 1
        self._repel(20)

    def advance(self, t: int) -> None:
        r, p = self.rng, self.p
        rho_s, rho_a, rho_b = p["shape"]["rho"], p["area"]["rho"], p["brightness"]["rho"]
        rho_v = p["motion"]["step_rho"]
        drift = p["motion"]["orientation_drift"]
        alive: list[_Cell] = []
        crowded = self.cfg.density_control and len(self.cells) - self.target(t) > 1.5
        for c in self.cells:
            if c.div_at == t - 1 and crowded:  # contact inhibition: postpone while above the fitted density
                c.div_at = t
            elif c.div_at == t - 1:  # divide: mother ended at t - 1, daughters start now
                self._end(c, t - 1)
                alive.extend(self._divide(c, t))
                continue
            alive.append(c)
        pause = float(p["motion"]["pause_probability"])
        for c in alive:
            c.paused = False
            if c.birth == t:
                continue
            if pause > 0 and r.uniform() < pause:  # frozen for this frame: same outline, same place
                c.paused = True
                continue
            c.z = self.mode_rho * c.z + self.mode_noise * r.standard_normal(self.k)
            c.g_rough = rho_s * c.g_rough + np.sqrt(1 - rho_s**2) * r.standard_normal()
            self._step_area(c, rho_a * c.g_area + np.sqrt(1 - rho_a**2) * r.standard_normal())
            c.g_bright = rho_b * c.g_bright + np.sqrt(1 - rho_b**2) * r.standard_normal()
            c.g_step = rho_v * c.g_step + np.sqrt(1 - rho_v**2) * r.standard_normal()
            c.orient += drift * r.standard_normal()
            if self.bank is not None:
                c.wobble = rho_s * c.wobble + np.sqrt(1 - rho_s**2) * self.wobble_sd * r.standard_normal(6)
            turn = float(_from_q(p["motion"]["turn_quantiles"], r.uniform()))
            c.heading = self._outward(c) if c.leaving else c.heading + turn
            step = float(_from_q(p["motion"]["sampler_step_quantiles"], stats.norm.cdf(c.g_step)))
            step *= self.cfg.motion_scale
            c.pos = c.pos + step * np.array([np.cos(c.heading), np.sin(c.heading)])
        # interior track ends (cells lost or dying) at the fitted rate
        if self.end_rate > 0:
            kept = []
            for c in alive:
                if c.birth == t or c.div_at < t + self.m_frames or r.uniform() >= self.end_rate:
                    kept.append(c)
                else:
                    self._end(c, t - 1)
            alive = kept
        self.cells = alive
        self._enter(t)
        self._repel(self.cfg.repulsion_iterations)

    def _divide(self, mother: _Cell, t: int) -> list[_Cell]:
        self.n_div += 1
        div = self.p["division"]
        a_m = self.area(mother)
        a_d = a_m * div["area_ratio"]
        sep = 0.5 * div["distance_ratio"] * 2 * np.sqrt(a_m / np.pi)
        wdir = np.array([-np.sin(mother.orient), np.cos(mother.orient)])  # minor axis (row, col)
        kids = []
        for sign in (1.0, -1.0):
            d = self._spawn(t, mother.pos + sign * sep * wdir, parent=mother.id,
                            heading=float(np.arctan2(sign * wdir[1], sign * wdir[0])))
            d.z = mother.z.copy()
            d.g_rough = mother.g_rough
            d.orient = mother.orient
            d.g_area = _to_g(self.p["area"]["sampler_quantiles"], a_d)
            d.g_bright = mother.g_bright
            self._schedule(d, t, self.m_frames + self.t_frames + 1)
            kids.append(d)
        return kids

    def _outward(self, c: _Cell) -> float:
        """Heading (radians, row/col convention of ``pos``) towards the nearest border."""
        y, x = c.pos
        dist = (y, self.h - y, x, self.w - x)
        return (np.pi, 0.0, -np.pi / 2, np.pi / 2)[int(np.argmin(dist))]

    def _enter(self, t: int) -> None:
        lam = self.entry_mean
        n = len(self.cells)
        for c in self.cells:
            c.leaving = False
        if self.cfg.density_control:
            deficit = self.target(t) - n
            if deficit > 0.5:
                lam += deficit
            elif deficit < -0.5:
                lam = 0.0
                # too crowded: let cells at the border leave the field of view
                excess = int(round(-deficit))
                if excess > 0:
                    d = np.array([min(c.pos[0], c.pos[1], self.h - c.pos[0], self.w - c.pos[1]) - np.sqrt(
                        self.area(c) / np.pi) for c in self.cells])
                    order = np.argsort(d)
                    for i in order[: min(excess, 2)]:
                        if self.cells[i].birth < t and d[i] < 0:
                            self.cells[i].dead = True
                            self._end(self.cells[i], t - 1)
                    # the next ones nearest the border head out of the field of view (emigration)
                    for i in order[: excess]:
                        self.cells[i].leaving = not self.cells[i].dead
                    self.cells = [c for c in self.cells if not c.dead]
        k = int(self.rng.poisson(lam)) if lam > 0 else 0
        for _ in range(k):
            side = int(self.rng.integers(4))
            rad = np.sqrt(float(_from_q(self.p["area"]["sampler_quantiles"], 0.5)) / np.pi)
            off = float(self.rng.uniform(-0.3, 0.3)) * rad
            if side == 0:
                pos, head = (off, self.rng.uniform(0, self.w)), 0.0
            elif side == 1:
                pos, head = (self.h - 1 - off, self.rng.uniform(0, self.w)), np.pi
            elif side == 2:
                pos, head = (self.rng.uniform(0, self.h), off), np.pi / 2
            else:
                pos, head = (self.rng.uniform(0, self.h), self.w - 1 - off), -np.pi / 2
            self.cells.append(self._spawn(t, np.array(pos), heading=head + float(self.rng.uniform(-1, 1))))

    def _repel(self, iterations: int) -> None:
        if len(self.cells) < 2 or iterations <= 0:
            return
        pos = np.array([c.pos for c in self.cells])
        rad = np.sqrt(np.array([self.area(c) for c in self.cells]) / np.pi)
        reach = 2 * self.spacing * rad.max() + self.cfg.min_gap
        fixed = np.array([c.paused for c in self.cells])
        for _ in range(iterations):
            pairs = cKDTree(pos).query_pairs(reach, output_type="ndarray")
            if len(pairs) == 0:
                break
            i, j = pairs[:, 0], pairs[:, 1]
            d = pos[j] - pos[i]
            dist = np.linalg.norm(d, axis=1)
            need = self.spacing * (rad[i] + rad[j]) + self.cfg.min_gap
            over = need - dist
            hit = over > 0
            if not hit.any():
                break
            i, j, d, dist, over = i[hit], j[hit], d[hit], dist[hit], over[hit]
            zero = dist < 1e-6
            if zero.any():
                ang = self.rng.uniform(-np.pi, np.pi, zero.sum())
                d[zero] = np.column_stack([np.cos(ang), np.sin(ang)])
                dist[zero] = 1.0
            # paused cells stay put; a moving partner takes the whole push
            share_i = np.where(fixed[i], 0.0, np.where(fixed[j], 1.0, 0.5))
            share_j = np.where(fixed[j], 0.0, np.where(fixed[i], 1.0, 0.5))
            push = (1.2 * over / dist)[:, None] * d
            delta = np.zeros_like(pos)
            np.add.at(delta, i, -push * share_i[:, None])
            np.add.at(delta, j, push * share_j[:, None])
            pos += delta
        for c, p_ in zip(self.cells, pos, strict=True):
            c.pos = p_

    def paint(self, t: int) -> np.ndarray:
        frame = np.zeros((self.h, self.w), dtype=np.uint16)
        counts: dict[int, int] = {}
        sums: dict[int, np.ndarray] = {}
        shape = (self.h, self.w)
        pending = []
        for c in sorted(self.cells, key=lambda c: c.id):
            rr, cc = self.pixels(c, shape)
            free = frame[rr, cc] == 0
            rr, cc = rr[free], cc[free]
            frame[rr, cc] = c.id
            counts[c.id] = len(rr)
            sums[c.id] = np.array([rr.sum(), cc.sum()], dtype=np.float64)
            if not len(rr):
                pending.append(c)
        for c in pending:  # covered by others but inside the canvas: keep one pixel at its centre
            y, x = int(round(c.pos[0])), int(round(c.pos[1]))
            if 0 <= y < self.h and 0 <= x < self.w:
                owner = int(frame[y, x])
                if owner and counts.get(owner, 0) <= 1:
                    continue
                if owner:
                    counts[owner] -= 1
                    sums[owner] -= (y, x)
                frame[y, x] = c.id
                counts[c.id] = 1
                sums[c.id] = np.array([y, x], dtype=np.float64)
        stage_f = self.p["brightness"]["stage_factor"]
        bq = self.p["brightness"]["quantiles"]
        # g_bright is the size-independent part; the brightness score mixes in the size score
        rho_ab = float(self.p["brightness"].get("area_corr", 0.0)) if self.cfg.brightness_follows_size else 0.0
        keep: list[_Cell] = []
        for c in self.cells:
            if counts.get(c.id, 0) == 0:
                self._end(c, t - 1)
                continue
            if c.div_at - t < self.m_frames:
                st = 3
            elif c.parent and t - c.birth < self.t_frames:
                st = 5
            else:
                st = 0
            c.stage.append(st)
            g_b = c.g_bright if not rho_ab else rho_ab * c.g_area + np.sqrt(1 - rho_ab**2) * c.g_bright
            c.bright.append(float(_from_q(bq, stats.norm.cdf(g_b))) * float(stage_f[st]))
            c.cent.append(tuple(sums[c.id] / counts[c.id]))
            c.pauses.append(c.paused)
            keep.append(c)
        self.cell_frames += len(keep)
        self.cells = keep
        return frame

    def _end(self, c: _Cell, last: int) -> None:
        """Close a cell's track at ``last`` (it is never shown again); drop it when never shown."""
        if last >= c.birth:
            self.rows.append([c.id, c.birth, last, c.parent])
            self._out[c.id] = c

    def finish(self, t_last: int) -> None:
        for c in self.cells:
            self.rows.append([c.id, c.birth, t_last, c.parent])
            self._out[c.id] = c

    def run_frames(self, cancel: CancelToken | None):
        self._out: dict[int, _Cell] = {}
        self.init()
        for t in range(self.cfg.frames):
            if cancel is not None:
                cancel.check()
            if t > 0:
                self.advance(t)  # a mother due at t - 1 ends there (unless postponed) and her daughters start
            frame = self.paint(t)
            yield t, frame
        self.finish(self.cfg.frames - 1)


class SimulatedLabels:
    """The (T, H, W) uint16 frames of one simulation, made again when they are read.

    Reading frames in order costs one simulation step each (an earlier frame starts the simulation again),
    and only the last frame read is held, so a video of any length takes the memory of one frame.
    ``labels[t]`` gives frame ``t``; ``np.asarray(labels)`` makes the whole video.
    """

    dtype = np.dtype(np.uint16)
    ndim = 3

    def __init__(self, model: ShapeModel, config: SimulationConfig) -> None:
        self._model, self._cfg = model, config
        self.shape = (int(config.frames), int(config.height), int(config.width))
        self._frames: Any = None
        self._last: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _frame(self, t: int) -> np.ndarray:
        if self._last is not None and self._last[0] == t:
            return self._last[1]
        if self._last is None or t < self._last[0]:
            self._frames = _Simulator(self._model, self._cfg).run_frames(None)
            self._last = None
        for i, frame in self._frames:
            self._last = (i, frame)
            if i == t:
                return frame
        raise IndexError(t)  # pragma: no cover - t was checked against the length

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            first, rest = (key[0], key[1:]) if key else (slice(None), ())
        else:
            first, rest = key, ()
        if isinstance(first, (int, np.integer)):
            t = int(first) + (self.shape[0] if first < 0 else 0)
            if not 0 <= t < self.shape[0]:
                raise IndexError(f"frame {first} of a {self.shape[0]}-frame video")
            frame = self._frame(t).copy()
            return frame[rest] if rest else frame
        return np.asarray(self)[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.uint16)
        for t in range(self.shape[0]):
            out[t] = self._frame(t)
        return out if dtype is None else out.astype(dtype)


def simulate_masks(
    model: ShapeModel,
    config: SimulationConfig | None = None,
    *,
    sink: Callable[[int, np.ndarray], None] | None = None,
    keep_frames: bool = True,
    cancel: CancelToken | None = None,
) -> Job[MaskVideo]:
    """Simulate a mask video; yields progress per frame and returns a :class:`MaskVideo`.

    Parameters
    ----------
    model : the fitted model.
    config : size, cells, seed and switches (:class:`SimulationConfig`).
    sink : optional ``sink(t, frame)`` called with each (H, W) uint16 frame; the frames are then not
        kept (``MaskVideo.labels`` is ``None``), so memory stays flat for any length.
    keep_frames : ``False``: the frames are not kept either, and ``MaskVideo.labels`` is a
        :class:`SimulatedLabels` that makes each one again when it is read (the same frames).
    cancel : checked between frames.
    """
    cfg = config or SimulationConfig()
    sim = _Simulator(model, cfg)
    keep = sink is None and keep_frames
    labels = np.zeros((cfg.frames, cfg.height, cfg.width), dtype=np.uint16) if keep else None
    for t, frame in sim.run_frames(cancel):
        if sink is not None:
            sink(t, frame)
        elif keep:
            labels[t] = frame
        yield Progress(t + 1, cfg.frames, f"frame {t + 1}/{cfg.frames}, {len(sim.cells)} cells", stage="simulate")
    # daughters that were never visible leave their mother with fewer children: fine for CTC
    known = {r[0] for r in sim.rows}
    rows = [r if (r[3] == 0 or r[3] in known) else [r[0], r[1], r[2], 0] for r in sim.rows]
    lineage = np.array(sorted(rows), dtype=np.int64).reshape(-1, 4)
    out = sim._out
    mothers_done = len({int(p) for p in lineage[:, 3] if p > 0})
    if sink is None and not keep_frames:
        labels = SimulatedLabels(model, cfg)
    return MaskVideo(
        labels=labels,
        lineage=lineage,
        brightness={c.id: np.asarray(c.bright, dtype=np.float32) for c in out.values()},
        stage={c.id: np.asarray(c.stage, dtype=np.int8) for c in out.values()},
        centroids={c.id: np.asarray(c.cent, dtype=np.float32).reshape(-1, 2) for c in out.values()},
        paused={c.id: np.asarray(c.pauses, dtype=bool) for c in out.values()},
        background=dict(model.params["background"]),
        normalisation=model.normalisation,
        config=cfg,
        stats={"divisions": float(mothers_done), "cell_frames": float(sim.cell_frames),
               "division_rate": mothers_done / max(sim.cell_frames, 1), "tracks": float(len(lineage))},
    )
