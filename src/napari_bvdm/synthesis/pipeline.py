"""Masks -> video: textured cells carried from frame to frame by the flow model, on a fitted background.

:func:`generate_video` is the frame-by-frame engine behind :mod:`~napari_bvdm.synthesis.recipe`. Each frame
goes through named steps around a :class:`_VideoState`:

- **cut** (:func:`_cut_cells`): one crop per cell, centred on it, the smallest that holds the cell now and
  in its previous frame (a track's state is padded or trimmed when its size changes); cells of one crop size
  go through the networks in one batch;
- **sort** (:func:`_sort_cells`): a cell continues its track, inherits its mother's last texture (a
  daughter's first frame: *division*), or starts afresh;
- **first frame** (:func:`_paint_new`): new cells are painted in one batch,
  ``painter.paint(masks, brightness, steps=tf0)`` (SDEdit from the silhouette);
- **warp** (:func:`_warp_cells`): the flow model predicts each continuing cell's mask-to-mask displacement,
  composed with the earlier ones into one displacement from a keyframe texture (no drift: the keyframe is
  resampled once per frame, re-anchored every ``reanchor_every`` frames);
- **refresh** (:func:`_refresh_cells`): the warped textures are refreshed in one batch,
  ``painter.paint(masks, brightness, init=warped, steps=tf_non0)``, then held to their track's contrast and
  brightness (:func:`_keep_tracks`);
- **scene** (:func:`_compose_scene`): background with the real camera's pattern, cells pasted, camera noise,
  blended edges and the real cells' halo.

It streams: one :class:`SynthFrame` ``(t, image, labels)`` per frame (plus
:class:`~napari_bvdm.runtime.progress.Progress` events); only per-track crop state is kept, so a long
video never sits in memory.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Generator
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
from scipy import ndimage as ndi

from ..flow.crops import crop_centred, crop_window, needed_crop, objects, paste_window
from ..io.video import InputError
from ..runtime.config import Config
from ..runtime.progress import CancelToken, Progress
from ..runtime.seeding import numpy_rng, torch_generator
from ..texture.profile import apply_halo
from .background import SceneStats, add_shot_noise, generate_background, illumination_field

__all__ = ["SynthesisConfig", "SynthFrame", "Painter", "generate_video", "prepare_labels", "check_compatibility"]


class Painter(Protocol):
    """The texture painter protocol (see docs/dev/contracts.md)."""

    crop_size: int

    def paint(self, masks: np.ndarray, brightness: np.ndarray, *, init: np.ndarray | None = None,
              steps: int | None = None, generator=None) -> np.ndarray: ...


class SynthFrame(NamedTuple):
    """One finished frame: ``t``, the raw image (normalisation dtype) and the uint16 track labels."""

    t: int
    image: np.ndarray
    labels: np.ndarray


@dataclasses.dataclass
class SynthesisConfig(Config):
    """Settings of the engine :func:`generate_video`, filled by the recipe from a ``GenerateConfig``.

    tf0 / tf_non0 : painter strengths for a track's first frame / for the refresh of later frames (the
        config's ``texture.first_strength`` / ``texture.refresh_strength``; 0 = no refresh).
    temporal : ``"flow"`` (warp + refresh) or ``"independent"`` (every frame painted afresh with ``tf0``:
        the baseline without temporal consistency that benchmarks compare with).
    warp : ``"compose"`` (flows composed from a keyframe, bilinear resampling, no drift) or ``"reference"``
        (the method paper's schedule: the last texture re-warped every frame with nearest-neighbour
        resampling, one cell at a time; a benchmark baseline).
    reanchor_every : with ``compose``, the refreshed texture becomes the new keyframe every N frames.
    halo : the real frames' halo to hold every frame to (mean intensity at 1, 2, ... px outside the outlines
        as a share of the nearest cell's contrast, :func:`~napari_bvdm.texture.profile.measure_halo`);
        empty = none.
    crop_size : smallest cell crop; ``None`` = :data:`MIN_CROP`. A cell's crop is the smallest multiple of the
        flow network's size step, at least this large, that holds its mask in this frame and in the previous
        one (its mother's, for a daughter's first frame) with a margin.
    seed : with ``video_index`` it selects every random stream.
    """

    tf0: int = 200
    tf_non0: int = 100
    temporal: Literal["flow", "independent"] = "flow"
    warp: Literal["compose", "reference"] = "compose"
    reanchor_every: int = 20
    halo: list[float] = dataclasses.field(default_factory=list)
    crop_size: int | None = None
    seed: int = 0

    def check(self) -> None:
        self._require(self.tf0 >= 1, "tf0", "must be >= 1")
        self._require(self.tf_non0 >= 0, "tf_non0", "must be >= 0")
        self._require(self.reanchor_every >= 1, "reanchor_every", "must be >= 1")
        h = np.asarray(self.halo, dtype=float)
        self._require(h.ndim == 1 and h.size <= 16 and bool(np.isfinite(h).all()) and bool((np.abs(h) < 2).all()),
                      "halo", "must be at most 16 finite numbers in (-2, 2)")
        self._require(self.crop_size is None or self.crop_size >= 16, "crop_size", "must be >= 16")

    @property
    def one_cell_at_a_time(self) -> bool:
        return self.warp == "reference"


#: Smallest cell crop (px) when ``SynthesisConfig.crop_size`` is not set
MIN_CROP = 32

#: Gaussian sigma of the 2-px band (1 px in, 1 px out) blended at every cell outline
EDGE_SIGMA = 1.0


@dataclasses.dataclass
class _Track:
    anchor: np.ndarray  # keyframe texture (s, s)
    anchor_mask: np.ndarray  # keyframe mask (s, s) float
    disp: Any  # torch (2, s, s): current grid -> keyframe, or None (identity)
    mask: np.ndarray  # last mask crop (s, s) bool
    tex: np.ndarray  # last texture crop (s, s)
    since_anchor: int = 0
    contrast: float = 0.0  # target std / mean inside the mask (first frame of the track or its mother)


def prepare_labels(labels: Any, lineage: np.ndarray | None = None) -> tuple[Any, np.ndarray]:
    """Check a label video and return ``(labels, lineage)``; per-frame ids are linked into tracks.

    Raises :class:`InputError` for a wrong shape or a lineage that does not match the labels.
    """
    from ..flow.pairs import is_tracked, link_by_overlap

    if len(getattr(labels, "shape", ())) != 3:
        raise InputError(f"expected a label video (T, H, W), got shape {getattr(labels, 'shape', None)}")
    if lineage is not None:
        lineage = np.asarray(lineage, dtype=np.int64).reshape(-1, 4)
        return labels, lineage
    arr = np.asarray(labels)
    if arr.dtype.kind not in "ui":
        raise InputError(f"labels must be integers, got {arr.dtype}")
    if not is_tracked(arr):
        warnings.warn("label ids are not tracks (an id jumps between cells or reappears after a gap); "
                      "linking objects frame to frame by overlap", stacklevel=2)
        return link_by_overlap(arr)
    rows = {}
    for t in range(arr.shape[0]):
        for lab in np.unique(arr[t]):
            if lab:
                rows.setdefault(int(lab), [t, t])[1] = t
    lin = np.array([[k, b, e, 0] for k, (b, e) in sorted(rows.items())], dtype=np.int64).reshape(-1, 4)
    if lin.size and lin[:, 0].max() > 65535:
        raise InputError("label ids above 65535 do not fit CTC uint16 labels; relabel first")
    return arr, lin


def check_compatibility(painter: Any, flow: Any, scene: SceneStats, median_area: float) -> list[str]:
    """Warnings when models were trained on data of another pixel size or intensity range."""
    msgs = []
    fa = float(getattr(flow, "extra", {}).get("median_cell_area", 0) or 0) if flow is not None else 0.0
    if fa > 0 and median_area > 0 and not 0.4 < median_area / fa < 2.5:
        msgs.append(f"cells here have a median area of {median_area:.0f} px but the flow model was trained on "
                    f"{fa:.0f} px cells: different pixel size? Retrain the flow model (bvdm train-flow) on "
                    "data of this scale")
    pn = getattr(painter, "normalisation", None)
    sn = scene.normalisation
    if pn is not None and sn:
        po, ps = float(pn.offset), float(pn.scale)
        so, ss = float(sn["offset"]), float(sn["scale"])
        if abs(po - so) > 0.25 * max(ss, ps) or not 0.67 < ps / ss < 1.5:
            msgs.append(f"the texture model's intensity range (offset {po:.4g}, scale {ps:.4g}) differs from the "
                        f"scene's (offset {so:.4g}, scale {ss:.4g}): textures are trained on another kind of data")
    return msgs


def _brightness_lookup(brightness: dict[int, np.ndarray] | None, lineage: np.ndarray, scene: SceneStats,
                       rng: np.random.Generator, n_frames: int):
    spans = {int(r[0]): (int(r[1]), int(r[2])) for r in lineage}
    const: dict[int, float] = {}
    mu, sd = scene.cell_brightness

    def get(track: int, t: int) -> float:
        if brightness is not None and track in brightness:
            b = np.asarray(brightness[track], dtype=np.float64).ravel()
            start = spans.get(track, (0, 0))[0]
            if len(b) == n_frames:
                return float(b[t])
            if 0 <= t - start < len(b):
                return float(b[t - start])
            if len(b):
                return float(b[min(max(t - start, 0), len(b) - 1)])
        if track not in const:
            const[track] = float(max(mu + sd * rng.standard_normal(), 0.25 * mu if mu > 0 else 0.05))
        return const[track]

    return get


@dataclasses.dataclass
class _VideoState:
    """What the engine carries from frame to frame of one video."""

    cfg: SynthesisConfig
    painter: Any
    flow: Any
    scene: SceneStats
    labels: Any
    lineage: np.ndarray
    video_index: int
    notes: list[str]
    get_brightness: Callable[[int, int], float]
    illumination: np.ndarray
    to_scene: tuple[float, float]
    noise_share: float
    device: Any
    parents: dict[int, int]
    children: dict[int, list[int]]
    starts: dict[int, int]
    tracks: dict[int, _Track] = dataclasses.field(default_factory=dict)
    extents: dict[int, int] = dataclasses.field(default_factory=dict)  # label -> bounding-box extent, last frame
    crop_counts: dict[int, int] = dataclasses.field(default_factory=dict)  # crop size -> cell-frames
    stats: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"painter_calls": 0, "cells_painted": 0, "flow_calls": 0})

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.labels.shape)  # type: ignore[return-value]

    def chunks(self, n: int) -> list[slice]:
        """Batches of cells: all at once, or one at a time for the reference schedule."""
        return [slice(i, i + 1) for i in range(n)] if self.cfg.one_cell_at_a_time else [slice(None)]

    def paint(self, masks: np.ndarray, bright: np.ndarray, init: np.ndarray | None, steps: int, gen: Any):
        out = []
        for sl in self.chunks(len(masks)):
            out.append(np.asarray(self.painter.paint(masks[sl], bright[sl], init=None if init is None else init[sl],
                                                     steps=steps, generator=gen), dtype=np.float32))
            self.stats["painter_calls"] += 1
        self.stats["cells_painted"] += len(masks)
        return np.concatenate(out)

    def predict(self, prev: np.ndarray, cur: np.ndarray):
        import torch

        out = []
        for sl in self.chunks(len(prev)):
            p = torch.from_numpy(prev[sl].astype(np.float32))[:, None].to(self.device)
            c = torch.from_numpy(cur[sl].astype(np.float32))[:, None].to(self.device)
            out.append(self.flow.predict_torch(p, c).float().cpu())
            self.stats["flow_calls"] += 1
        return torch.cat(out)


def _extent(bbox: tuple[slice, slice]) -> int:
    """The longer side of a bounding box."""
    return max(bbox[0].stop - bbox[0].start, bbox[1].stop - bbox[1].start)


def _survey(labels: Any, painter: Any) -> tuple[list[str], list[float]]:
    """Notes on the label video (empty frames, cells larger than the painter's crops) and a sample of cell
    areas, in one pass over bounding boxes."""
    n_frames = int(labels.shape[0])
    extent, areas, empty = 0, [], []
    for t in range(n_frames):
        fr = np.asarray(labels[t])
        obs = objects(fr)
        if not obs:
            empty.append(t)
        for sl in obs.values():
            extent = max(extent, _extent(sl))
        if t % max(1, n_frames // 10) == 0 and obs:
            areas.extend(np.bincount(fr.ravel())[list(obs)].tolist())
    notes: list[str] = []
    trained = int(getattr(painter, "crop_size", 0) or 0) if getattr(painter, "model", None) is not None else 0
    if trained and extent > trained:  # a learnt texture model (the classical renderer has no crop to outgrow)
        notes.append(f"the largest cell spans {extent} px, more than the {trained}-px crops the texture model "
                     "learnt from: its texture may look less real")
    if empty:
        notes.append(f"{len(empty)} frame(s) hold no cell (e.g. t={empty[0]}): they are background only")
    return notes, areas


def _setup(labels: Any, painter: Any, flow: Any, scene: SceneStats, cfg: SynthesisConfig, lineage: np.ndarray | None,
           brightness: dict[int, np.ndarray] | None, video_index: int) -> _VideoState:
    import torch

    if cfg.temporal == "flow" and flow is None:
        raise InputError("a flow model is needed for temporal='flow' (or use temporal='independent')")
    labels, lineage = prepare_labels(labels, lineage)
    n_frames, height, width = (int(s) for s in labels.shape)
    notes, areas = _survey(labels, painter)
    notes += check_compatibility(painter, flow, scene, float(np.median(areas)) if areas else 0.0)
    for n in notes:
        warnings.warn(n, stacklevel=3)
    norm = scene.norm
    pn = getattr(painter, "normalisation", None)  # painter units -> scene units (usually the same)
    to_scene = (1.0, 0.0)
    if pn is not None and (abs(pn.offset - norm.offset) > 1e-9 or abs(pn.scale - norm.scale) > 1e-9):
        to_scene = (pn.scale / norm.scale, (pn.offset - norm.offset) / norm.scale)
    parents = {int(r[0]): int(r[3]) for r in lineage}
    children: dict[int, list[int]] = {}
    for c, p in parents.items():
        if p:
            children.setdefault(p, []).append(c)
    rng_b = numpy_rng(cfg.seed, "video", video_index, "brightness")
    return _VideoState(
        cfg, painter, flow, scene, labels, lineage, video_index, notes,
        _brightness_lookup(brightness, lineage, scene, rng_b, n_frames), illumination_field(scene, (height, width)),
        to_scene, float(getattr(painter, "camera_noise_share", 1.0)), getattr(flow, "device", torch.device("cpu")),
        parents, children, {int(r[0]): int(r[1]) for r in lineage})


def _cut_cells(v: _VideoState, frame_lab: np.ndarray, t: int):
    """Step *cut*: ``(ids, masks, corners, brightness)`` of the cells of one frame; ``masks[k]`` is cell k's
    crop, sized for the cell in this frame and in its previous one (or its mother's last)."""
    obs = objects(frame_lab)
    ids = sorted(obs)
    base, multiple = int(v.cfg.crop_size or MIN_CROP), int(getattr(v.flow, "multiple", 16))
    masks, corners, extents = [], [], {}
    for lab in ids:
        sl = obs[lab]
        extents[lab] = _extent(sl)
        before = v.extents.get(lab, v.extents.get(v.parents.get(lab, 0), 0))  # its own last frame, or its mother's
        size = needed_crop(max(extents[lab], before), base, multiple)
        v.crop_counts[size] = v.crop_counts.get(size, 0) + 1
        y0, x0 = crop_window(sl, size)
        corners.append((y0, x0))
        masks.append(crop_centred(frame_lab, y0, x0, size) == lab)
    v.extents.update(extents)
    bright = np.array([v.get_brightness(lab, t) for lab in ids], dtype=np.float32)
    return ids, masks, corners, bright


def _sort_cells(v: _VideoState, ids: list[int], masks: list[np.ndarray]) -> tuple[list[tuple[int, _Track]],
                                                                                 list[int]]:
    """Step *sort*: cells that continue a track (a daughter continues from its mother: *division*) and new ones."""
    cont, first = [], []
    for k, lab in enumerate(ids):
        if v.cfg.temporal == "independent":
            first.append(k)
        elif lab in v.tracks:
            cont.append((k, _resized(v.tracks[lab], masks[k].shape[0])))
        elif v.parents.get(lab, 0) in v.tracks:
            cont.append((k, _inherit(v.tracks[v.parents[lab]], masks[k].shape[0])))
        else:
            first.append(k)
    return cont, first


def _fit(a: Any, size: int) -> Any:
    """A centred crop of ``a`` (numpy or torch, ``(..., s, s)``) padded with zeros or trimmed to ``size``."""
    if a is None or a.shape[-1] == size:
        return a
    d = size - a.shape[-1]
    lo, hi = d // 2, d - d // 2
    if not isinstance(a, np.ndarray):  # torch: negative padding trims
        import torch.nn.functional as F

        return F.pad(a, (lo, hi, lo, hi))
    if d > 0:
        return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(lo, hi), (lo, hi)])
    return a[..., -lo:a.shape[-2] + hi, -lo:a.shape[-1] + hi]


def _resized(st: _Track, size: int) -> _Track:
    """A track's state in a crop of ``size`` (same centre; pixel displacements keep their meaning)."""
    if st.mask.shape[-1] == size:
        return st
    return _Track(_fit(st.anchor, size), _fit(st.anchor_mask, size), _fit(st.disp, size), _fit(st.mask, size),
                  _fit(st.tex, size), st.since_anchor, st.contrast)


def _inherit(mother: _Track, size: int) -> _Track:
    """Division: a daughter's first texture is its mother's last one, warped onto the daughter's mask."""
    tex, mask = _fit(mother.tex, size), _fit(mother.mask, size)
    return _Track(tex, mask.astype(np.float32), None, mask, tex, 0, mother.contrast)


def _paint_new(v: _VideoState, tex: list[np.ndarray], first: list[int], masks: list[np.ndarray], bright: np.ndarray,
               gen: Any) -> None:
    """Step *first frame*: new cells (all of one crop size) painted from their silhouettes in one batch."""
    if first:
        fk = np.array(first)
        for k, painted in zip(first, v.paint(np.stack([masks[k] for k in first]), bright[fk], None, v.cfg.tf0, gen),
                              strict=True):
            tex[k] = painted


def _warp_cells(v: _VideoState, cont: list[tuple[int, _Track]], masks: list[np.ndarray], bright: np.ndarray):
    """Step *warp*: each continuing cell's keyframe texture resampled onto its current mask (all of one crop
    size).

    Returns the warped textures (holes filled) and the displacements from the keyframes."""
    import torch

    from ..flow.net import compose, warp

    ck = np.array([k for k, _ in cont])
    size = masks[ck[0]].shape[0]
    u = v.predict(np.stack([st.mask for _, st in cont]), np.stack([masks[k] for k in ck]))
    if v.cfg.warp == "compose":
        anchors = torch.from_numpy(np.stack([st.anchor for _, st in cont]))[:, None]
        amasks = torch.from_numpy(np.stack([st.anchor_mask for _, st in cont]).astype(np.float32))[:, None]
        disp = torch.stack([u[i] if st.disp is None else compose(st.disp[None], u[i:i + 1])[0]
                            for i, (_, st) in enumerate(cont)])
        mode = "bilinear"
    else:  # the reference: the last texture is the keyframe, re-warped every frame
        anchors = torch.from_numpy(np.stack([st.tex for _, st in cont]))[:, None]
        amasks = torch.from_numpy(np.stack([st.mask for _, st in cont]).astype(np.float32))[:, None]
        disp, mode = u, "nearest"
    warped = warp(anchors, disp, mode=mode)[:, 0].numpy()
    valid = warp(amasks, disp, mode="bilinear")[:, 0].numpy() > 0.5
    init = np.zeros((len(ck), size, size), np.float32)
    for i, k in enumerate(ck):
        init[i] = _fill_holes(warped[i], valid[i], masks[k], bright[k])
    return init, disp


def _refresh_cells(v: _VideoState, tex: list[np.ndarray], cont: list[tuple[int, _Track]], init: np.ndarray,
                   masks: list[np.ndarray], bright: np.ndarray, gen: Any) -> None:
    """Step *refresh*: the warped textures (all of one crop size) re-noised to ``tf_non0`` and denoised in one
    batch."""
    ck = [k for k, _ in cont]
    out = v.paint(np.stack([masks[k] for k in ck]), bright[ck], init, int(v.cfg.tf_non0), gen) \
        if v.cfg.tf_non0 > 0 else init
    for k, refreshed in zip(ck, out, strict=True):
        tex[k] = refreshed


def _keep_tracks(v: _VideoState, t: int, ids: list[int], masks: list[np.ndarray], bright: np.ndarray,
                 tex: list[np.ndarray], cont: list[tuple[int, _Track]], disp: dict[int, Any]) -> None:
    """Hold each cell to its track's contrast and target brightness; update the per-track state."""
    new: dict[int, _Track] = {}
    for k, st in cont:
        lab = ids[k]
        since = st.since_anchor + 1 if lab in v.tracks else 1
        if v.cfg.warp == "compose" and since < v.cfg.reanchor_every:
            new[lab] = _Track(st.anchor, st.anchor_mask, disp[k], masks[k], tex[k], since, st.contrast)
        else:
            new[lab] = _Track(None, None, None, masks[k], tex[k], 0, st.contrast)  # re-anchored below
    for k, lab in enumerate(ids):
        m = masks[k]
        st = new.get(lab)
        if st is not None and st.contrast > 0 and m.sum() > 8:
            mu, sd = float(tex[k][m].mean()), float(tex[k][m].std())
            if mu > 1e-6 and sd > 1e-9:
                gain = float(np.clip(st.contrast * mu / sd, 0.5, 2.0))
                tex[k][m] = mu + (tex[k][m] - mu) * gain
        cur = float(tex[k][m].mean()) if m.any() else 0.0
        if cur > 1e-6 and bright[k] > 0:
            tex[k] *= float(np.clip(bright[k] / cur, 0.5, 2.0))
        tex[k][~m] = 0.0
        if st is None or st.anchor is None:
            c = st.contrast if st is not None else _contrast(tex[k], m)
            new[lab] = _Track(tex[k].copy(), m.astype(np.float32), None, m, tex[k].copy(), 0, c)
        else:
            st.tex, st.mask = tex[k].copy(), m
    for lab, st in v.tracks.items():  # finished tracks whose daughters have not started yet
        if lab not in new and any(v.starts.get(c, -1) > t for c in v.children.get(lab, [])):
            new[lab] = st
    v.tracks = new


def _compose_scene(v: _VideoState, t: int, frame_lab: np.ndarray, ids: list[int], corners: list[tuple[int, int]],
                   tex: np.ndarray) -> np.ndarray:
    """Step *scene*: background, cells pasted, camera noise, blended edges, halo; raw units."""
    _, height, width = v.shape
    rng = numpy_rng(v.cfg.seed, "video", v.video_index, "background", t)
    canvas = generate_background(v.scene, (height, width), rng, v.illumination)
    for k, lab in enumerate(ids):
        y0, x0 = corners[k]
        dst, src = paste_window((height, width), y0, x0, tex[k].shape[0])
        own = frame_lab[dst] == lab
        canvas[dst][own] = tex[k][src][own] * v.to_scene[0] + v.to_scene[1]
    if ids:
        fg = frame_lab > 0
        add_shot_noise(v.scene, canvas, fg, rng, share=v.noise_share)
        edges = (fg & ~ndi.binary_erosion(fg)) | (ndi.binary_dilation(fg) & ~fg)  # 1 px in + 1 px out
        blurred = ndi.gaussian_filter(canvas, EDGE_SIGMA)
        canvas[edges] = blurred[edges]
        if v.cfg.halo:
            canvas = apply_halo(canvas, frame_lab, v.cfg.halo)
    return v.scene.norm.inverse(canvas)


def _frame(v: _VideoState, t: int) -> SynthFrame:
    """One frame through every step."""
    frame_lab = np.asarray(v.labels[t])
    ids, masks, corners, bright = _cut_cells(v, frame_lab, t)
    tex = [np.zeros(m.shape, np.float32) for m in masks]
    gen = torch_generator(v.cfg.seed, "video", v.video_index, "paint", t)
    cont, first = _sort_cells(v, ids, masks)
    disp: dict[int, Any] = {}
    for size in sorted({m.shape[0] for m in masks}):  # one batch per crop size
        _paint_new(v, tex, [k for k in first if masks[k].shape[0] == size], masks, bright, gen)
        group = [(k, st) for k, st in cont if masks[k].shape[0] == size]
        if group:
            init, d = _warp_cells(v, group, masks, bright)
            _refresh_cells(v, tex, group, init, masks, bright, gen)
            disp.update({k: d[i] for i, (k, _) in enumerate(group)})
    _keep_tracks(v, t, ids, masks, bright, tex, cont, disp)
    image = _compose_scene(v, t, frame_lab, ids, corners, tex)
    return SynthFrame(t, image, frame_lab.astype(np.uint16, copy=True))


def generate_video(
    labels: Any,
    painter: Painter,
    flow: Any | None,
    scene: SceneStats,
    config: SynthesisConfig | None = None,
    *,
    lineage: np.ndarray | None = None,
    brightness: dict[int, np.ndarray] | None = None,
    video_index: int = 0,
    cancel: CancelToken | None = None,
) -> Generator[Progress | SynthFrame, None, dict[str, Any]]:
    """Stream a synthetic video for a label video; yields :class:`SynthFrame` and :class:`Progress`.

    Parameters
    ----------
    labels : (T, H, W) track ids (numpy or lazy, read one frame at a time), e.g. ``MaskVideo.labels``;
        per-frame ids without ``lineage`` are linked by overlap.
    painter : a texture painter (``DiffusionPainter``, ``ClassicalPainter``, ...).
    flow : a :class:`~napari_bvdm.flow.FlowModel` (``None`` only with ``temporal="independent"``).
    scene : background and cell-brightness statistics (:func:`fit_scene_stats`); its normalisation
        converts to raw units.
    lineage : (N, 4) ``L B E P``; daughters inherit their parent's texture.
    brightness : per-track per-frame target brightness (normalised), e.g. ``MaskVideo.brightness``;
        missing tracks draw a constant from ``scene.cell_brightness``.
    video_index : with ``config.seed`` it selects the random streams, so one (seed, video_index)
        reproduces the video exactly.
    cancel : checked before every frame (raises :class:`~napari_bvdm.runtime.progress.Cancelled`).

    Returns
    -------
    dict with ``lineage``, ``crop_size`` (the largest crop), ``crop_sizes`` (cell-frames per crop size),
    ``warnings``, ``painter_calls``, ``cells_painted``, ``flow_calls``.
    """
    v = _setup(labels, painter, flow, scene, config or SynthesisConfig(), lineage, brightness, video_index)
    n_frames = v.shape[0]
    for t in range(n_frames):
        if cancel is not None:
            cancel.check()
        frame = _frame(v, t)
        yield frame
        yield Progress(t + 1, n_frames, f"frame {t + 1}/{n_frames}",
                       metrics={"cells": float(len(np.unique(frame.labels)) - (frame.labels == 0).any())},
                       stage="generate")
    return {"lineage": v.lineage, "crop_size": max(v.crop_counts, default=0),
            "crop_sizes": dict(sorted(v.crop_counts.items())), "warnings": v.notes, **v.stats}

def _contrast(tex: np.ndarray, mask: np.ndarray) -> float:
    """std / mean of a texture inside its mask (0 when undefined)."""
    if mask.sum() < 8:
        return 0.0
    mu = float(tex[mask].mean())
    return float(tex[mask].std() / mu) if mu > 1e-6 else 0.0


def _fill_holes(warped: np.ndarray, valid: np.ndarray, mask: np.ndarray, fallback: float) -> np.ndarray:
    """Warped texture inside ``mask``; mask pixels the keyframe did not cover take the nearest covered value."""
    out = np.where(mask, warped, 0.0).astype(np.float32)
    hole = mask & ~valid
    if hole.any():
        if valid.any():
            idx = ndi.distance_transform_edt(~valid, return_distances=False, return_indices=True)
            out[hole] = warped[idx[0][hole], idx[1][hole]]
        else:
            out[hole] = fallback
    return out
