"""``bvdm train-flow``: train the mask-to-mask flow model on consecutive real masks of the same track."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

NAME = "train-flow"
HELP = "train the flow model (VoxelMorph-style UNet) on consecutive real masks of a CTC dataset or label video"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_settings_argument

    p.add_argument("source", type=Path, help="CTC dataset or sequence folder (uses _GT/TRA) or a label video")
    p.add_argument("-o", "--output", type=Path, required=True, help="weights file to write (.safetensors)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 3000)")
    p.add_argument("--batch-size", type=int, default=None, help="pairs per step (default 32)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    p.add_argument("--smooth-weight", type=float, default=None, help="smoothness weight (default 0.01)")
    p.add_argument("--crop-size", type=int, default=None, help="crop size, multiple of 16 (default 96)")
    p.add_argument("--max-pairs", type=int, default=None, help="use at most this many pairs (default all)")
    p.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default torch's choice)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint next to the output")
    add_settings_argument(p)


def run(args: argparse.Namespace) -> int:
    from ..flow.train import FlowTrainConfig, checkpoint_path, train_flow
    from ..runtime.progress import run_job
    from ._common import load_settings, progress_callback

    settings = load_settings(args, "train_flow")
    model_settings = dict(settings.pop("model", {}))
    if args.crop_size is not None:
        model_settings["crop_size"] = args.crop_size
    for key in ("steps", "batch_size", "lr", "smooth_weight", "max_pairs", "seed", "device", "threads"):
        v = getattr(args, key)
        if v is not None:
            settings[key] = v
    settings["model"] = model_settings
    cfg = FlowTrainConfig.from_dict(settings)
    if args.no_resume and checkpoint_path(args.output).exists():
        checkpoint_path(args.output).unlink()
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports and writes
    model = run_job(train_flow(args.source, args.output, cfg), progress_callback(args) if main_rank else None)
    if not main_rank:
        return 0
    v = model.extra.get("validation", {})
    if v:
        print(f"validation Dice {v['dice']:.4f} (identity {v['dice_identity']:.4f}, centroid shift "
              f"{v['dice_centroid_shift']:.4f}) on {v['pairs']} held-out pairs")
    print(f"wrote {args.output}")
    return 0
