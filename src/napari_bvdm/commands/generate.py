"""``bvdm generate``: synthetic annotated videos (masks -> textures -> flow -> scene) into a CTC dataset."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

NAME = "generate"
HELP = "generate N synthetic, fully annotated videos into a CTC dataset (+ synthesis.json)"
DESCRIPTION = (
    "Generate synthetic videos: masks from a shape model (--shapes) or a label video (--labels), textures "
    "from a texture model (--texture) or the classical painter, carried over time by the flow model "
    "(--flow), on a background fitted to a real video (--real) or the shape model's statistics. Models "
    "not given default to the bundled ones in napari_bvdm/defaults. Several processes can fill one "
    "dataset: give each its own --first-video range with the same --seed."
)

DEFAULTS = Path(__file__).resolve().parents[1] / "defaults"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_settings_argument

    src = p.add_mutually_exclusive_group()
    src.add_argument("--shapes", type=Path, default=None,
                     help="shape model JSON (default: bundled defaults/shape_model.json)")
    src.add_argument("--labels", type=Path, default=None,
                     help="a label video (TIFF stack, frame folder or CTC dataset) used instead of a shape model")
    p.add_argument("--texture", default=None,
                   help="texture weights (.safetensors) or 'classical' (default: bundled defaults/texture.safetensors)")
    p.add_argument("--flow", type=Path, default=None, help="flow weights (default: bundled defaults/flow.safetensors)")
    p.add_argument("-o", "--output", type=Path, required=True, help="CTC dataset folder to write into")
    p.add_argument("--videos", type=int, default=1, help="number of videos")
    p.add_argument("--first-video", type=int, default=1, help="sequence number of the first video (01 = 1)")
    p.add_argument("--seed", type=int, default=0, help="base seed; video n uses seed + seed-offset + n - 1")
    p.add_argument("--seed-offset", type=int, default=0, help="shift all video seeds (new videos, same numbers)")
    p.add_argument("--frames", type=int, default=50, help="frames per video (shape model only)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(512, 512),
                   help="frame size (shape model only)")
    p.add_argument("--cells", type=int, default=None, help="cells in the first frame (default: fitted density)")
    p.add_argument("--density-scale", type=float, default=1.0,
                   help="with the fitted density (no --cells): multiply it, e.g. 1.5 for a more crowded video with "
                        "more cells touching (default 1)")
    p.add_argument("--outlines", choices=("model", "real"), default="model",
                   help="cell outlines: model (radial contour PCA) or real (the real outlines stored in the shape "
                        "model by `bvdm fit-shapes --keep-outlines N`) (default model)")
    p.add_argument("--real", type=Path, default=None,
                   help="real video to fit the background/brightness statistics on (default: the shape model's)")
    p.add_argument("--scene", type=Path, default=None, help="saved scene statistics JSON (instead of --real)")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default=None,
                   help="texture sampler (default ddim: 50 passes, eta 0.5; ddpm = the reference's 200 ancestral "
                   "steps, most realistic, lower mask fidelity; see docs/texture.md)")
    p.add_argument("--ddim-steps", type=int, default=None, help="DDIM passes for a Tf0 start (default 50)")
    p.add_argument("--ddim-eta", type=float, default=None,
                   help="DDIM stochasticity, 0 deterministic .. 1 DDPM-like (default 0.5)")
    p.add_argument("--tf0", type=int, default=None, help="SDEdit strength of a track's first frame (default 200)")
    p.add_argument("--tf-non0", type=int, default=None,
                   help="refresh strength of later frames (default 100; the reference: 10)")
    p.add_argument("--refresh-passes", type=int, default=None,
                   help="DDIM passes per refresh at most (default 8)")
    p.add_argument("--halo", action="store_true",
                   help="hold every frame to the halo of the real cells of --real (intensity 1-4 px outside the "
                        "annotated outlines; needs SEG or TRA labels there): docs/texture.md")
    p.add_argument("--faint-cells", action="store_true",
                   help="draw the faint blobs that the labels of --real leave out (out-of-focus cells, a few per "
                        "cent of a cell's contrast) into the background, unlabelled, so that networks trained on "
                        "the set leave them out too; measured to hurt on GOWT1, whose faintest annotated cells are "
                        "as dim (docs/synthesis.md)")
    p.add_argument("--no-rim-profile", action="store_true",
                   help="paint from a flat silhouette, without holding cells to the real cells' rim profile that "
                   "texture models now store when trained (older files have none; docs/texture.md)")
    p.add_argument("--rim-distribution", action="store_true", default=None,
                   help="match the real cells' whole intensity distribution at every depth inside the outline (dim "
                        "and bright parts, e.g. MSC's spread cytoplasm), not only its mean; needs a texture model "
                        "trained since stop 18 (docs/texture.md)")
    p.add_argument("--noise-share", type=float, default=None,
                   help="share of the fitted camera-noise variance added to cells (default: the painter's, 0.5 "
                   "for the texture model, 1 for the classical painter)")
    p.add_argument("--flow-residual", type=float, default=None,
                   help="share of the flow's non-affine part kept inside each cell, 0..1 (default 1: as predicted)")
    p.add_argument("--warp", choices=("compose", "sequential"), default=None,
                   help="compose flows from a keyframe (no drift) or re-warp every frame (reference); default compose")
    p.add_argument("--interpolation", choices=("bilinear", "nearest"), default=None,
                   help="texture resampling (default bilinear)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None, help="texture network precision")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--overwrite", action="store_true", help="replace existing sequences with the same numbers")
    add_settings_argument(p)


def _default(name: str) -> Path | None:
    p = DEFAULTS / name
    return p if p.is_file() else None


def build_painter(texture: str | None, args: argparse.Namespace):
    """The painter and the texture file used (None for the classical painter)."""
    from ..runtime.config import ConfigError
    from ..texture import generation
    from ..texture.painter import ClassicalPainter, DiffusionPainter, DiffusionPainterConfig

    if texture == "classical":
        return ClassicalPainter(), None
    path = Path(texture) if texture else _default("texture.safetensors")
    if path is None:
        raise ConfigError("no texture model: pass --texture WEIGHTS (from `bvdm train-texture`) or --texture classical")
    from ..texture.model import TextureModel

    model = TextureModel.load(path, device=args.device if args.device != "auto" else "cpu")
    over = {k: getattr(args, k) for k in ("ddim_steps", "ddim_eta", "tf0", "tf_non0", "precision", "refresh_passes")
            if getattr(args, k, None) is not None}
    sampler = args.sampler or generation.SAMPLER
    if sampler == "ddim":  # the measured generation painter (texture/generation.py)
        over.setdefault("ddim_steps", generation.DDIM_STEPS)
        over.setdefault("ddim_eta", generation.DDIM_ETA)
    if getattr(args, "no_rim_profile", False):
        over["rim_profile"] = False
    if getattr(args, "rim_distribution", None):
        over["rim_distribution"] = True
    cfg = DiffusionPainterConfig(device=args.device, **over)
    return DiffusionPainter(model, sampler=sampler, config=cfg), path


def _fixed_mmap_threshold() -> None:
    """glibc only: serve large blocks (whole frames) by mmap, so the heap does not fragment and RSS stays
    flat over long videos (benchmarks/bench_synthesis.py --parts memory: 562 -> 736 MB over 80 frames with
    glibc's dynamic threshold, flat at 530 MB with a fixed one). Process-wide, so only the command line
    does it, never the library."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def _apply_gui_generate_section(args: argparse.Namespace, gui: dict) -> None:
    """Take the painter and video settings of a GUI run-settings file's ``generate`` section.

    Options given on the command line win (an option still at the parser's default counts as not given);
    the GUI's preview-only keys are ignored.
    """
    if not gui:
        return
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = vars(parser.parse_args(["--output", "-"]))
    for key in ("sampler", "ddim_steps", "ddim_eta", "cells", "density_scale", "frames", "seed"):
        if getattr(args, key) == defaults[key] and gui.get(key) is not None:
            setattr(args, key, gui[key])
    if tuple(args.size) == tuple(defaults["size"]) and gui.get("height") and gui.get("width"):
        args.size = (int(gui["height"]), int(gui["width"]))
    if args.texture is None and gui.get("painter") == "classical":
        args.texture = "classical"
    if not args.halo and gui.get("halo"):
        args.halo = True  # measured on --real at run time
    if not args.rim_distribution and gui.get("rim_distribution"):
        args.rim_distribution = True


def run(args: argparse.Namespace) -> int:
    import numpy as np

    _fixed_mmap_threshold()

    from ..flow import FlowModel
    from ..runtime.config import ConfigError
    from ..runtime.device import resolve_device
    from ..runtime.progress import run_job
    from ..synthesis import SceneStats, SynthesisConfig, fit_scene_stats
    from ..synthesis.export import MaskSet, export_dataset
    from ._common import load_settings, progress_callback

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    _apply_gui_generate_section(args, load_settings(args, "generate"))
    settings = load_settings(args, "synthesis")
    for key in ("tf0", "tf_non0", "warp", "interpolation", "flow_residual", "noise_share"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    settings["seed"] = args.seed
    if args.faint_cells:
        settings["faint_cells"] = True
    cfg = SynthesisConfig.from_dict(settings)
    painter, texture_file = build_painter(args.texture, args)
    flow_path = args.flow or _default("flow.safetensors")
    if flow_path is None:
        raise ConfigError("no flow model: pass --flow WEIGHTS (from `bvdm train-flow`)")
    flow = FlowModel.load(flow_path, device=resolve_device(args.device))

    shape_model, shape_file = None, None
    if args.labels is None:
        from ..shapes import ShapeModel

        shape_file = args.shapes or _default("shape_model.json")
        if shape_file is None:
            raise ConfigError("no shape model: pass --shapes MODEL (from `bvdm fit-shapes`) or --labels VIDEO")
        shape_model = ShapeModel.load(shape_file)

    # scene statistics: fitted on a real video, a saved file, or the shape model's background
    norm = painter.normalisation
    if args.real is not None:
        from ..io.readers import read_video

        real = read_video(args.real, lazy=True)
        if real.image is None:
            raise ConfigError(f"{args.real} holds no images to fit the background on")
        main = real.dense_labels() or real.main_labels()
        scene = fit_scene_stats(real.image, None if main is None else main[1],
                                norm if texture_file is not None else None, source=str(args.real))
        if args.halo:
            from ..texture.profile import halo_from_video

            cfg = cfg.replace(halo=halo_from_video(real))
    elif args.halo:
        raise ConfigError("--halo is measured on the real cells: give --real VIDEO (with SEG or TRA labels)")
    elif args.faint_cells and args.scene is None:
        raise ConfigError("--faint-cells are measured beside the real cells: give --real VIDEO (with labels) "
                          "or --scene JSON fitted on one")
    elif args.scene is not None:
        scene = SceneStats.load(args.scene)
    elif shape_model is not None:
        bq = np.asarray(shape_model.params["brightness"]["quantiles"], float)
        bright = (float(np.median(bq)), float((np.percentile(bq, 84) - np.percentile(bq, 16)) / 2))
        scene = SceneStats.from_shape_background(shape_model.params["background"],
                                                 shape_model.normalisation or norm.to_dict(), bright)
    else:
        raise ConfigError("with --labels, give --real VIDEO (or --scene JSON) to fit the background and brightness")

    if texture_file is None:  # the classical painter has no units of its own: use the scene's
        painter.normalisation = scene.norm
    params = {"argv": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                       if not k.startswith("_")}}
    if args.labels is not None:
        from ..flow.pairs import load_label_video

        labels, lineage, kind = load_label_video(args.labels)
        masks = MaskSet(labels, lineage, info={"source": str(args.labels), "kind": kind})
    else:
        from ..shapes import SimulationConfig, simulate_masks

        h, w = args.size
        sim_base = SimulationConfig(frames=args.frames, height=h, width=w, cells=args.cells, outlines=args.outlines,
                                    density_scale=args.density_scale)
        params["simulation"] = sim_base.to_dict()

        def masks(number: int, seed: int):
            return simulate_masks(shape_model, sim_base.replace(seed=seed))

    files = {"flow": flow_path, "texture": texture_file, "shapes": shape_file,
             "labels": args.labels if args.labels and Path(args.labels).is_file() else None}
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        out = run_job(export_dataset(args.output, masks, painter, flow, scene, cfg, n_videos=args.videos,
                                     first_video=args.first_video, seed_offset=args.seed_offset,
                                     model_files=files, parameters=params, overwrite=args.overwrite),
                      progress_callback(args))
    last = args.first_video + args.videos - 1
    print(f"wrote videos {args.first_video:02d}..{last:02d} to {out} (validated; see {out}/synthesis.json)")
    return 0
