"""Masks -> video: textured cells carried from frame to frame by the flow model, on a fitted background.

For every frame, all cells go through the painter in (at most) two batched calls:

- cells in the first frame of their track: ``painter.paint(masks, brightness, steps=tf0)`` (SDEdit from
  the silhouette);
- all other cells: the previous texture is warped with the predicted mask-to-mask flow, masked, and
  refreshed with ``painter.paint(masks, brightness, init=warped, steps=tf_non0)``. Daughters start from
  their mother's last texture warped onto their own first mask (texture inheritance).

Warping does not drift: with ``warp="compose"`` (default) flows are composed into one displacement from
a keyframe texture, which is resampled once per frame (re-anchored every ``reanchor_every`` frames);
``warp="sequential"`` is the reference behaviour (re-warp the last texture every frame).

The generator streams: it yields one :class:`SynthFrame` ``(t, image, labels)`` per frame (plus
:class:`~napari_bvdm.runtime.progress.Progress` events) and keeps only per-track crop state, so a long
video never sits in memory.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Generator
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
from .faint import FaintLayer

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
    """Parameters of :func:`generate_video` (all recorded in synthesis.json).

    tf0 / tf_non0 : painter steps for a track's first frame / for the refresh of later frames. The
        refresh is stronger than the reference's 10 (measured, docs/synthesis.md): at 100 the texture of
        real GOWT1 cells changes from frame to frame as much as ours (relative MAD at texture scale 1.01 x
        real; 10 gave 0.69 x, too still), and fine detail is redrawn every frame, so composed warps of
        fast-changing outlines no longer leave stretched, streaky textures.
    daughter_steps : refresh steps for a daughter's first frame (``None`` = ``tf_non0``).
    temporal : ``"flow"`` (warp + refresh) or ``"independent"`` (every frame painted afresh with
        ``tf0``; a baseline without temporal consistency).
    warp : ``"compose"`` (compose flows from a keyframe, no drift) or ``"sequential"`` (reference).
    interpolation : ``"bilinear"`` or ``"nearest"`` (reference) texture resampling.
    reanchor_every : with ``compose``, the refreshed texture becomes the new keyframe every N frames.
    flow_residual : share of the predicted flow's non-affine part kept inside each cell (1 = the flow as
        predicted; 0 = its least-squares affine fit over the cell's mask: the texture moves, turns,
        stretches and shears as a whole, outline changes are left to the mask cut and hole filling).
    edge_sigma : Gaussian sigma of the 2-px edge blending band (0 = off).
    halo : the real frames' halo to hold every frame to: mean intensity at 1, 2, ... px outside the outlines
        as a share of the nearest cell's contrast over its local background
        (:func:`~napari_bvdm.texture.profile.measure_halo`); empty = off. Applied as an offset per ring
        pixel after the edge blending (:func:`~napari_bvdm.texture.profile.apply_halo`).
    halo_neighbours : with ``halo``, the halo light of neighbouring cells adds up (the gap between two close
        cells gets both cells' halo, as in real frames) instead of each background pixel taking only its
        nearest cell's.
    batch_cells : ``False`` paints and warps one cell at a time (the reference schedule).
    match_brightness : rescale each cell to its target mean brightness after painting.
    match_contrast : keep each track's texture contrast (std inside the mask) at its first frame's value:
        long chains of warps slowly flatten textures (interpolation, accumulated deformation), which
        this undoes; daughters inherit their mother's target.
    shot_noise : add fresh signal-dependent camera noise to the cells in every frame (fitted
        ``SceneStats.noise_gain``), as real frames have.
    noise_share : share of that fitted noise variance to add; ``None`` = the painter's
        ``camera_noise_share`` (0.5 for diffusion painters, whose textures already carry the grain of the
        real crops they learnt from; 1 for painters without the attribute, e.g. the classical one).
    crop_size : cell crop size (``None`` = the painter's); grown to fit the largest mask.
    faint_cells : draw the faint blobs that the real labels leave out (out-of-focus cells;
        ``SceneStats.faint``, :mod:`~napari_bvdm.synthesis.faint`) into the background, unlabelled, so a
        network trained on the synthetic frames learns to leave them out as the annotators did.
    faint_step : their drift, standard deviation of the step per frame and axis in pixels.
    """

    tf0: int = 200
    tf_non0: int = 100
    daughter_steps: int | None = None
    temporal: Literal["flow", "independent"] = "flow"
    warp: Literal["compose", "sequential"] = "compose"
    interpolation: Literal["bilinear", "nearest"] = "bilinear"
    reanchor_every: int = 20
    flow_residual: float = 1.0
    edge_sigma: float = 1.0
    halo: list[float] = dataclasses.field(default_factory=list)
    halo_neighbours: bool = False
    batch_cells: bool = True
    match_brightness: bool = True
    match_contrast: bool = True
    shot_noise: bool = True
    noise_share: float | None = None
    crop_size: int | None = None
    faint_cells: bool = False
    faint_step: float = 0.5
    seed: int = 0

    def check(self) -> None:
        self._require(self.tf0 >= 1, "tf0", "must be >= 1")
        self._require(self.tf_non0 >= 0, "tf_non0", "must be >= 0")
        self._require(self.daughter_steps is None or self.daughter_steps >= 0, "daughter_steps", "must be >= 0")
        self._require(self.reanchor_every >= 1, "reanchor_every", "must be >= 1")
        self._require(0.0 <= self.flow_residual <= 1.0, "flow_residual", "must be in [0, 1]")
        self._require(self.edge_sigma >= 0, "edge_sigma", "must be >= 0")
        h = np.asarray(self.halo, dtype=float)
        self._require(h.ndim == 1 and h.size <= 16 and bool(np.isfinite(h).all()) and bool((np.abs(h) < 2).all()),
                      "halo", "must be at most 16 finite numbers in (-2, 2)")
        self._require(self.noise_share is None or self.noise_share >= 0, "noise_share", "must be >= 0")
        self._require(self.crop_size is None or self.crop_size >= 16, "crop_size", "must be >= 16")
        self._require(np.isfinite(self.faint_step) and self.faint_step >= 0, "faint_step", "must be >= 0")


@dataclasses.dataclass
class _Track:
    anchor: np.ndarray  # keyframe texture (s, s)
    anchor_mask: np.ndarray  # keyframe mask (s, s) float
    disp: Any  # torch (2, s, s): current grid -> keyframe, or None (identity)
    mask: np.ndarray  # last mask crop (s, s) bool
    tex: np.ndarray  # last texture crop (s, s)
    since_anchor: int = 0
    contrast: float = 0.0  # target std / mean inside the mask (first frame of the track or its mother)


def affine_blend(flow: Any, masks: np.ndarray, keep: float) -> Any:
    """Replace each displacement field ``flow[b]`` (torch (2, h, w)) by its least-squares affine fit over
    ``masks[b]`` plus ``keep`` times the rest (fields over masks of fewer than 6 pixels stay as they are)."""
    import torch

    from ..flow.net import identity_grid

    _, _, h, w = flow.shape
    grid = identity_grid(h, w, flow.device, flow.dtype).reshape(2, -1).T  # (hw, 2): y, x
    basis = torch.cat([grid, torch.ones(h * w, 1, dtype=flow.dtype, device=flow.device)], 1)  # (hw, 3)
    out = flow.clone()
    for b in range(flow.shape[0]):
        sel = torch.from_numpy(np.asarray(masks[b], bool).ravel())
        if int(sel.sum()) < 6:
            continue
        target = flow[b].reshape(2, -1).T  # (hw, 2)
        coef = torch.linalg.lstsq(basis[sel], target[sel]).solution  # (3, 2)
        aff = (basis @ coef).T.reshape(2, h, w)
        out[b] = aff + keep * (flow[b] - aff)
    return out


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
    video_index : index in a dataset; with ``config.seed`` it selects the random streams, so one
        (seed, video_index) reproduces the video exactly.
    cancel : checked before every frame (raises :class:`~napari_bvdm.runtime.progress.Cancelled`).

    Returns
    -------
    dict with ``lineage``, ``crop_size``, ``warnings``, ``painter_calls``, ``cells_painted``.
    """
    import torch

    from ..flow.net import compose, warp

    cfg = config or SynthesisConfig()
    if cfg.temporal == "flow" and flow is None:
        raise InputError("a flow model is needed for temporal='flow' (or use temporal='independent')")
    labels, lineage = prepare_labels(labels, lineage)
    n_frames, height, width = (int(s) for s in labels.shape)
    norm = scene.norm
    parents = {int(r[0]): int(r[3]) for r in lineage}
    children: dict[int, list[int]] = {}
    starts = {int(r[0]): int(r[1]) for r in lineage}
    for c, p in parents.items():
        if p:
            children.setdefault(p, []).append(c)

    # crop size: the painter's, grown to hold the largest cell (one pass over bounding boxes)
    base = int(cfg.crop_size or getattr(painter, "crop_size", 96))
    extent, areas, empty = 0, [], []
    for t in range(n_frames):
        fr = np.asarray(labels[t])
        obs = objects(fr)
        if not obs:
            empty.append(t)
        for sl in obs.values():
            extent = max(extent, sl[0].stop - sl[0].start, sl[1].stop - sl[1].start)
        if t % max(1, n_frames // 10) == 0 and obs:
            areas.extend(np.bincount(fr.ravel())[list(obs)].tolist())
    multiple = int(getattr(flow, "multiple", 16)) if flow is not None else 16
    size = needed_crop(extent, base, multiple)
    notes: list[str] = []
    if size != base:
        notes.append(f"largest cell spans {extent} px: crops grown from {base} to {size} px")
    if empty:
        notes.append(f"{len(empty)} frame(s) hold no cell (e.g. t={empty[0]}): they are background only")
    notes += check_compatibility(painter, flow, scene, float(np.median(areas)) if areas else 0.0)
    faint = None
    if cfg.faint_cells:
        if scene.faint:
            faint = FaintLayer(scene.faint, (height, width), numpy_rng(cfg.seed, "video", video_index, "faint"),
                               cfg.faint_step)
        else:
            notes.append("faint_cells: the scene statistics hold no faint-blob measure (fitted without labels, "
                         "before stop 19, or no background to search); none drawn")
    for n in notes:
        warnings.warn(n, stacklevel=2)

    # painter units -> scene units (identical in the usual case where both come from one real video)
    pn = getattr(painter, "normalisation", None)
    to_scene = (1.0, 0.0)
    if pn is not None and (abs(pn.offset - norm.offset) > 1e-9 or abs(pn.scale - norm.scale) > 1e-9):
        to_scene = (pn.scale / norm.scale, (pn.offset - norm.offset) / norm.scale)
    rng_b = numpy_rng(cfg.seed, "video", video_index, "brightness")
    get_b = _brightness_lookup(brightness, lineage, scene, rng_b, n_frames)
    illum = illumination_field(scene, (height, width))
    device = getattr(flow, "device", torch.device("cpu"))
    noise_share = cfg.noise_share if cfg.noise_share is not None else float(getattr(painter, "camera_noise_share", 1.0))
    mode = cfg.interpolation
    states: dict[int, _Track] = {}
    stats = {"painter_calls": 0, "cells_painted": 0, "flow_calls": 0}

    def paint(masks, bright, init, steps, gen):
        out = []
        chunks = range(len(masks)) if not cfg.batch_cells else [slice(None)]
        for sl in chunks:
            sl = slice(sl, sl + 1) if isinstance(sl, int) else sl
            out.append(np.asarray(painter.paint(masks[sl], bright[sl], init=None if init is None else init[sl],
                                                steps=steps, generator=gen), dtype=np.float32))
            stats["painter_calls"] += 1
        stats["cells_painted"] += len(masks)
        return np.concatenate(out)

    def predict(prev, cur):
        out = []
        chunks = range(len(prev)) if not cfg.batch_cells else [slice(None)]
        for sl in chunks:
            sl = slice(sl, sl + 1) if isinstance(sl, int) else sl
            p = torch.from_numpy(prev[sl].astype(np.float32))[:, None].to(device)
            c = torch.from_numpy(cur[sl].astype(np.float32))[:, None].to(device)
            out.append(flow.predict_torch(p, c).float().cpu())
            stats["flow_calls"] += 1
        u = torch.cat(out)
        return u if cfg.flow_residual >= 1.0 else affine_blend(u, cur, cfg.flow_residual)

    for t in range(n_frames):
        if cancel is not None:
            cancel.check()
        frame_lab = np.asarray(labels[t])
        obs = objects(frame_lab)
        ids = sorted(obs)
        masks = np.zeros((len(ids), size, size), bool)
        corners = []
        for k, lab in enumerate(ids):
            y0, x0 = crop_window(obs[lab], size)
            corners.append((y0, x0))
            masks[k] = crop_centred(frame_lab, y0, x0, size) == lab
        bright = np.array([get_b(lab, t) for lab in ids], dtype=np.float32)
        tex = np.zeros((len(ids), size, size), np.float32)
        gen = torch_generator(cfg.seed, "video", video_index, "paint", t)
        # --- which cells continue, which inherit, which start afresh
        cont, first = [], []
        for k, lab in enumerate(ids):
            if cfg.temporal == "independent":
                first.append(k)
            elif lab in states:
                cont.append((k, states[lab]))
            elif parents.get(lab, 0) in states:
                st = states[parents[lab]]
                cont.append((k, _Track(st.tex, st.mask.astype(np.float32), None, st.mask, st.tex, 0, st.contrast)))
            else:
                first.append(k)
        if first:
            fk = np.array(first)
            tex[fk] = paint(masks[fk], bright[fk], None, cfg.tf0, gen)
        new_states: dict[int, _Track] = {}
        if cont:
            ck = np.array([k for k, _ in cont])
            prev_m = np.stack([st.mask for _, st in cont])
            u = predict(prev_m, masks[ck])
            anchors = torch.from_numpy(np.stack([st.anchor for _, st in cont]))[:, None]
            amasks = torch.from_numpy(np.stack([st.anchor_mask for _, st in cont]).astype(np.float32))[:, None]
            if cfg.warp == "compose":
                disp = torch.stack([u[i] if st.disp is None else compose(st.disp[None], u[i:i + 1])[0]
                                    for i, (_, st) in enumerate(cont)])
            else:  # sequential: the last texture is the keyframe
                anchors = torch.from_numpy(np.stack([st.tex for _, st in cont]))[:, None]
                amasks = torch.from_numpy(np.stack([st.mask for _, st in cont]).astype(np.float32))[:, None]
                disp = u
            warped = warp(anchors, disp, mode=mode)[:, 0].numpy()
            valid = warp(amasks, disp, mode="bilinear")[:, 0].numpy() > 0.5
            init = np.zeros((len(ck), size, size), np.float32)
            for i, k in enumerate(ck):
                init[i] = _fill_holes(warped[i], valid[i], masks[k], bright[k])
            steps = np.array([cfg.daughter_steps if (cfg.daughter_steps is not None and ids[k] not in states)
                              else cfg.tf_non0 for k in ck])
            for s_val in np.unique(steps):
                sel = np.flatnonzero(steps == s_val)
                if s_val > 0:
                    tex[ck[sel]] = paint(masks[ck[sel]], bright[ck[sel]], init[sel], int(s_val), gen)
                else:
                    tex[ck[sel]] = init[sel]
            for i, (k, st) in enumerate(cont):
                lab = ids[k]
                since = st.since_anchor + 1 if lab in states else 1
                if cfg.warp == "compose" and since < cfg.reanchor_every:
                    new_states[lab] = _Track(st.anchor, st.anchor_mask, disp[i], masks[k], tex[k], since, st.contrast)
                else:
                    new_states[lab] = _Track(None, None, None, masks[k], tex[k], 0, st.contrast)  # re-anchor below
        for k, lab in enumerate(ids):
            m = masks[k]
            st = new_states.get(lab)
            if cfg.match_contrast and st is not None and st.contrast > 0 and m.sum() > 8:
                mu = float(tex[k][m].mean())
                sd = float(tex[k][m].std())
                if mu > 1e-6 and sd > 1e-9:
                    gain = float(np.clip(st.contrast * mu / sd, 0.5, 2.0))
                    tex[k][m] = mu + (tex[k][m] - mu) * gain
            if cfg.match_brightness:
                cur = float(tex[k][m].mean()) if m.any() else 0.0
                if cur > 1e-6 and bright[k] > 0:
                    tex[k] *= float(np.clip(bright[k] / cur, 0.5, 2.0))
            tex[k][~m] = 0.0
            if st is None or st.anchor is None:
                c = st.contrast if st is not None else _contrast(tex[k], m)
                new_states[lab] = _Track(tex[k].copy(), m.astype(np.float32), None, m, tex[k].copy(), 0, c)
            else:
                st.tex, st.mask = tex[k].copy(), m
        # keep finished tracks whose daughters have not started yet
        for lab, st in states.items():
            if lab not in new_states and any(starts.get(c, -1) > t for c in children.get(lab, [])):
                new_states[lab] = st
        states = new_states

        # --- scene assembly
        rng = numpy_rng(cfg.seed, "video", video_index, "background", t)
        canvas = generate_background(scene, (height, width), rng, illum)
        if faint is not None:
            canvas += faint.next_frame()
        for k, lab in enumerate(ids):
            y0, x0 = corners[k]
            dst, src = paste_window((height, width), y0, x0, size)
            own = frame_lab[dst] == lab
            canvas[dst][own] = tex[k][src][own] * to_scene[0] + to_scene[1]
        if cfg.shot_noise and ids:
            add_shot_noise(scene, canvas, frame_lab > 0, rng, share=noise_share)
        if cfg.edge_sigma > 0 and ids:
            fg = frame_lab > 0
            edges = (fg & ~ndi.binary_erosion(fg)) | (ndi.binary_dilation(fg) & ~fg)  # 1 px in + 1 px out
            blurred = ndi.gaussian_filter(canvas, cfg.edge_sigma)
            canvas[edges] = blurred[edges]
        if cfg.halo and ids:
            canvas = apply_halo(canvas, frame_lab, cfg.halo, neighbours=cfg.halo_neighbours)
        image = norm.inverse(canvas)
        out_lab = frame_lab.astype(np.uint16, copy=True)
        yield SynthFrame(t, image, out_lab)
        yield Progress(t + 1, n_frames, f"frame {t + 1}/{n_frames}",
                       metrics={"cells": float(len(ids))}, stage="generate")
    return {"lineage": lineage, "crop_size": size, "warnings": notes, "faint_cells": len(faint) if faint else 0,
            **stats}


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
