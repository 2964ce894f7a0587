"""``bvdm evaluate``: train on synthetic, test on real (SEG, DET, TRA, LNK with py-ctcmetrics)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "evaluate"
HELP = "train a segmentation net on real / synthetic / both / classical data, test on held-out real frames"
DESCRIPTION = (
    "Train-on-synthetic, test-on-real. The same compact UNet (interior + boundary, watershed) is trained "
    "with the same budget on each training set (real = annotated frames of the first part of the real "
    "sequence; synthetic; real+synthetic; classical-renderer synthetic), for several seeds; it segments the "
    "held-out second part of the real sequence, an overlap tracker links the instances, and SEG, DET, TRA "
    "and LNK are scored with py-ctcmetrics against the real ground truth. Writes runs.csv, summary.csv, "
    "summary.md, scores.png and every NN_RES into the output folder."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_settings_argument

    p.add_argument("--real", type=Path, default=None,
                   help="real CTC sequence with ground truth, e.g. Fluo-N2DH-GOWT1/01 (required)")
    p.add_argument("--synthetic", type=Path, default=None,
                   help="our synthetic CTC data: a sequence folder or a dataset folder with 01, 02, ...")
    p.add_argument("--classical", type=Path, default=None,
                   help="synthetic CTC data made with the classical renderer (baseline)")
    p.add_argument("-o", "--output", type=Path, required=True, help="result folder to write")
    p.add_argument("--sets", nargs="+", default=None,
                   help="training sets (default: real synthetic real+synthetic classical; missing data is skipped)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds (default 0 1 2)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default 300)")
    p.add_argument("--batch-size", type=int, default=None, help="patches per step (default 8)")
    p.add_argument("--patch-size", type=int, default=None, help="patch side in pixels (default 128)")
    p.add_argument("--augment", choices=["none", "intensity"], default=None,
                   help="training augmentation for every set: none (flips/rotations, default) or intensity "
                        "(also random contrast, brightness, gamma, blur and noise)")
    p.add_argument("--base-channels", type=int, default=None, help="UNet width (default 16)")
    p.add_argument("--split", type=float, default=None, help="fraction of real frames for training (default 0.5)")
    p.add_argument("--max-frames", type=int, default=None, help="use only the first N real frames (default all)")
    p.add_argument("--downsample", type=int, default=None, help="integer downsampling of real frames (default 2)")
    p.add_argument("--synthetic-downsample", type=int, default=None,
                   help="downsampling of the synthetic data (default: same as --downsample)")
    p.add_argument("--crop", nargs=2, type=int, default=None, metavar=("H", "W"),
                   help="centre crop of the test frames after downsampling (default whole frame)")
    p.add_argument("--max-synthetic-frames", type=int, default=None,
                   help="at most this many synthetic frames per set (default 200)")
    p.add_argument("--mix", choices=("sample", "pretrain"), default=None,
                   help="how real+synthetic combines: sample = every patch from real with probability "
                        "--real-share (default); pretrain = synthetic first, then fine-tune on real")
    p.add_argument("--real-share", type=float, default=None,
                   help="share of real patches (sample) or of the steps spent on real (pretrain) (default 0.5)")
    p.add_argument("--mixed-outline-ignore", type=int, default=None, metavar="PX",
                   help="real+synthetic: leave synthetic pixels within PX of a cell outline out of the loss, so "
                        "outlines are learnt from the real frames only (default 0 = off)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default torch's choice)")
    g = p.add_argument_group("making the synthetic sets first (--generate)")
    g.add_argument("--generate", action="store_true",
                   help="make the synthetic and classical sets from the training part of --real first "
                        "(written to OUTPUT/data; needs no --synthetic/--classical)")
    g.add_argument("--texture-model", type=Path, default=None,
                   help="texture weights for --generate (default: train one on the training part)")
    g.add_argument("--flow-model", type=Path, default=None,
                   help="flow weights for --generate (default: train one on the training part)")
    g.add_argument("--videos", type=int, default=None, help="synthetic videos per set (default 2)")
    g.add_argument("--generate-downsample", type=int, default=None,
                   help="generate at 1/N of the real scale, for cells too large for 96-px crops (default 1; MSC: 2)")
    g.add_argument("--texture-steps", type=int, default=None, help="texture training steps (default 2000)")
    g.add_argument("--flow-steps", type=int, default=None, help="flow training steps (default 300)")
    g.add_argument("--outlines", choices=("model", "real"), default=None,
                   help="outlines of the simulated cells: model (radial contour PCA, default) or real (the "
                        "training part's real outlines; for cells with protrusions such as MSC)")
    g.add_argument("--halo", action="store_true",
                   help="hold the synthetic frames to the real cells' halo (intensity 1-4 px outside the annotated "
                        "outlines, measured on the training part; docs/texture.md)")
    g.add_argument("--no-rim-profile", action="store_true", default=None,
                   help="paint both synthetic sets from a flat silhouette, without holding the cells to the real "
                        "cells' rim profile (docs/texture.md)")
    g.add_argument("--faint-cells", action="store_true",
                   help="draw the faint blobs that the real labels leave out (out-of-focus cells) into both "
                        "synthetic sets' backgrounds, unlabelled; measured to hurt on GOWT1 (docs/synthesis.md)")
    g.add_argument("--rim-distribution", action="store_true", default=None,
                   help="the diffusion painter matches the real cells' whole intensity distribution at every depth "
                        "inside the outline, not only its mean (dim parts of spread cells; docs/texture.md)")
    p.add_argument("--save-weights", action="store_true", help="keep each run's network (.safetensors)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in the same folder")
    add_settings_argument(p)


def build_config(args: argparse.Namespace):
    """The :class:`ExperimentConfig` from ``--settings`` (section ``evaluate``) and the options."""
    from ..evaluate.experiment import ExperimentConfig
    from ._common import load_settings

    s = load_settings(args, "evaluate")
    net = dict(s.pop("net", {}))
    train = dict(s.pop("train", {}))
    for key in ("real", "synthetic", "classical"):
        v = getattr(args, key)
        if v is not None:
            s[key] = str(v)
    for key in ("sets", "seeds", "split", "max_frames", "downsample", "synthetic_downsample",
                "max_synthetic_frames", "mix", "real_share", "mixed_outline_ignore"):
        v = getattr(args, key)
        if v is not None:
            s[key] = v
    if args.crop is not None:
        s["crop"] = list(args.crop)
    if args.save_weights:
        s["save_weights"] = True
    for key in ("steps", "batch_size", "patch_size", "device", "augment"):
        v = getattr(args, key)
        if v is not None:
            train[key] = v
    if args.base_channels is not None:
        net["base_channels"] = args.base_channels
    s["net"], s["train"] = net, train
    return ExperimentConfig.from_dict(s)


def run(args: argparse.Namespace) -> int:
    from ..evaluate.experiment import run_experiment
    from ..io.video import InputError
    from ..runtime.progress import run_job
    from ._common import progress_callback

    cfg = build_config(args)
    if not cfg.real:
        raise InputError("give the real CTC sequence with ground truth: --real DS/01")
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    if args.generate:
        from ..evaluate.synthetic_sets import SyntheticSetsConfig, make_synthetic_sets
        from ._common import load_settings

        gs = load_settings(args, "evaluate_generate")
        for key in ("videos", "texture_steps", "flow_steps", "outlines"):
            if getattr(args, key) is not None:
                gs[key] = getattr(args, key)
        if args.generate_downsample is not None:
            gs["downsample"] = args.generate_downsample
        if args.no_rim_profile:
            gs["rim_profile"] = False
        if args.halo:
            gs["halo"] = True
        if args.rim_distribution:
            gs["rim_distribution"] = True
        if args.faint_cells:
            gs["faint_cells"] = True
        g = int(gs.get("downsample", 1))
        if cfg.downsample % g:
            raise InputError(f"--downsample {cfg.downsample} must be a multiple of --generate-downsample {g}")
        if cfg.train.device != "auto":
            gs.setdefault("device", cfg.train.device)
        wanted = tuple(k for k in ("synthetic", "classical") if any(k in s.split("+") for s in cfg.sets))
        made = run_job(make_synthetic_sets(cfg.real, args.output / "data", SyntheticSetsConfig.from_dict(gs),
                                           split=cfg.split, max_frames=cfg.max_frames, texture_model=args.texture_model,
                                           flow_model=args.flow_model, sets=wanted), progress_callback(args))
        cfg = cfg.replace(**{k: str(v) for k, v in made.items()}, synthetic_downsample=cfg.downsample // g)
    result = run_job(run_experiment(cfg, args.output, resume=args.resume), progress_callback(args))
    print((result.out_dir / "summary.md").read_text())
    print(f"wrote {result.out_dir} (runs.csv, summary.csv, summary.md, scores.png, runs/*/01_RES)")
    return 0
