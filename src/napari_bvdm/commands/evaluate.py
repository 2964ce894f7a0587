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
    from ._common import add_config_argument

    p.add_argument("--real", type=Path, default=None,
                   help="real CTC sequence with ground truth, e.g. Fluo-N2DH-GOWT1/01 (required)")
    p.add_argument("--synthetic", type=Path, default=None,
                   help="our synthetic CTC data: a sequence folder or a dataset folder with 01, 02, ...")
    p.add_argument("-o", "--output", type=Path, required=True, help="result folder to write")
    p.add_argument("--sets", nargs="+", default=None,
                   help="training sets (default: real synthetic real+synthetic classical; missing data is skipped)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds (default 0 1 2)")
    p.add_argument("--steps", type=int, default=None, help="training steps per network (default 300)")
    p.add_argument("--downsample", type=int, default=None, help="shrink the real frames by this factor (default 2)")
    p.add_argument("--synthetic-downsample", type=int, default=None,
                   help="shrink the synthetic frames by this factor (default: as --downsample)")
    p.add_argument("--generate", action="store_true",
                   help="make the synthetic and classical sets from the training part of --real first "
                        "(written to OUTPUT/data)")
    p.add_argument("--texture-model", type=Path, default=None,
                   help="with --generate: texture model file (default: train one on the training part)")
    p.add_argument("--flow-model", type=Path, default=None,
                   help="with --generate: flow model file (default: train one on the training part)")
    p.add_argument("--device", default=None, help="auto (a GPU when there is one), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default torch's choice)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted evaluation in the same folder")
    add_config_argument(p)


def build_config(args: argparse.Namespace):
    """The :class:`ExperimentConfig` from ``--config`` and the options given on the command line."""
    from ..evaluate.experiment import ExperimentConfig
    from ._common import load_config

    cfg = load_config(args, ExperimentConfig)
    top = {"real": args.real, "synthetic": args.synthetic, "sets": args.sets, "seeds": args.seeds,
           "downsample": args.downsample, "synthetic_downsample": args.synthetic_downsample}
    changes = {k: (str(v) if isinstance(v, Path) else v) for k, v in top.items() if v is not None}
    if args.steps is not None:
        changes["train"] = cfg.train.replace(steps=args.steps)
    if args.device is not None:
        changes["train"] = changes.get("train", cfg.train).replace(device=args.device)
        changes["generate"] = cfg.generate.replace(synthesis=cfg.generate.synthesis.replace(device=args.device))
    return cfg.replace(**changes) if changes else cfg


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
        from ..evaluate.synthetic_sets import make_synthetic_sets

        gs = cfg.generate
        if cfg.downsample % gs.downsample:
            raise InputError(f"--downsample {cfg.downsample} must be a multiple of the generation's downsample "
                             f"{gs.downsample} (generate.downsample in --config)")
        if cfg.train.device != "auto" and gs.synthesis.device == "auto":
            gs = gs.replace(synthesis=gs.synthesis.replace(device=cfg.train.device))
        wanted = tuple(k for k in ("synthetic", "classical") if any(k in s.split("+") for s in cfg.sets))
        made = run_job(make_synthetic_sets(cfg.real, args.output / "data", gs, split=cfg.split,
                                           max_frames=cfg.max_frames, texture_model=args.texture_model,
                                           flow_model=args.flow_model, sets=wanted), progress_callback(args))
        cfg = cfg.replace(**{k: str(v) for k, v in made.items()}, synthetic_downsample=cfg.downsample // gs.downsample)
    result = run_job(run_experiment(cfg, args.output, resume=args.resume), progress_callback(args))
    print((result.out_dir / "summary.md").read_text())
    print(f"wrote {result.out_dir} (runs.csv, summary.csv, summary.md, scores.png, runs/*/01_RES)")
    return 0
