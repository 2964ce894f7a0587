"""``bvdm train-texture``: train the DDPM texture model on per-cell crops of one real video."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

NAME = "train-texture"
HELP = "train the diffusion texture model on per-cell crops of a CTC sequence (full masks: SEG/ST/ERR_SEG)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_settings_argument

    p.add_argument("source", type=Path, help="CTC sequence folder, e.g. .../Fluo-N2DH-GOWT1/01 (uses 01_GT/SEG+TRA)")
    p.add_argument("-o", "--output", type=Path, required=True, help="weights file to write (.safetensors)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps in total (default 2000)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint next to the output (OUTPUT.ckpt.safetensors)")
    p.add_argument("--batch-size", type=int, default=None, help="crops per step (default 16)")
    p.add_argument("--lr", type=float, default=None, help="RAdam learning rate (default 1e-3)")
    p.add_argument("--crop-size", type=int, default=None, help="crop side, multiple of 2**depth (default 96)")
    p.add_argument("--width", type=int, default=None, help="UNet width of the first level (default 16)")
    p.add_argument("--depth", type=int, default=None, help="UNet down-samplings (default 3)")
    p.add_argument("--mask-channel", action=argparse.BooleanOptionalAction, default=None,
                   help="feed the mask as a second input channel (default on: the measured recipe, docs/texture.md; "
                   "--no-mask-channel for the reference's image-only network)")
    p.add_argument("--cell-level", type=float, default=None,
                   help="scale each training crop to this mean inside its mask (default: off, normalised units)")
    p.add_argument("--t-max", type=int, default=None,
                   help="train timesteps in [0, t_max) (default 1000 = full chain; SDEdit uses t < Tf0)")
    p.add_argument("--ema-decay", type=float, default=None, help="EMA decay (default 0.999)")
    p.add_argument("--val-fraction", type=float, default=None, help="share of tracks held out (default 0.15)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default 1337)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default torch's choice)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop training after this many minutes, keep the checkpoint and write the weights of the step "
                        "reached (default no limit; train.max_seconds in settings)")
    p.add_argument("--log-every", type=int, default=0,
                   help="print a plain log line every N steps instead of the progress bar (default off)")
    add_settings_argument(p)


def run(args: argparse.Namespace) -> int:
    from ..runtime.progress import run_job
    from ..texture.crops import load_ctc_crops
    from ..texture.model import TextureModelConfig
    from ..texture.train import TrainConfig, checkpoint_path_for, train_texture
    from ._common import load_settings, progress_callback

    settings = load_settings(args, "texture")
    model_s = dict(settings.get("model", {}))
    train_s = dict(settings.get("train", {}))
    unet_s = dict(model_s.pop("unet", {}))
    for key, dest in (("width", unet_s), ("depth", unet_s), ("crop_size", model_s)):
        if getattr(args, key) is not None:
            dest[key] = getattr(args, key)
    if args.cell_level is not None:
        model_s["cell_level"] = args.cell_level
    if args.mask_channel is not None:
        unet_s["mask_channel"] = bool(args.mask_channel)
    model_s["unet"] = unet_s
    for key in ("steps", "device", "batch_size", "lr", "t_max", "ema_decay", "val_fraction", "seed"):
        if getattr(args, key) is not None:
            train_s[key] = getattr(args, key)
    if args.threads is not None:
        train_s["num_threads"] = args.threads
    if args.max_minutes is not None:
        train_s["max_seconds"] = 60 * args.max_minutes
    model_cfg = TextureModelConfig.from_dict(model_s)
    cfg = TrainConfig.from_dict(train_s)
    crops = load_ctc_crops(args.source, crop_size=model_cfg.crop_size)
    print(f"{len(crops)} cell crops of {crops.crop_size}x{crops.crop_size} from {len(set(crops.track.tolist()))} "
          f"tracks (left out: {crops.skipped}); normalisation {crops.normalisation.to_dict()}", file=sys.stderr)
    ckpt = checkpoint_path_for(args.output)
    job = train_texture(crops, model_cfg, cfg, checkpoint=ckpt, resume=args.resume)
    bar = None if args.log_every else progress_callback(args)
    t0 = time.monotonic()

    def callback(ev) -> None:
        if bar is not None:
            bar(ev)
        if args.log_every and ev.step % args.log_every == 0 and ev.metrics.get("loss") is not None:
            m = ev.metrics
            print(f"step {ev.step}/{ev.total} loss {m['loss']:.4f} val_loss {m['val_loss']:.4f} "
                  f"crops/s {m['crops_per_s']:.2f} elapsed {time.monotonic() - t0:.0f}s eta {m['eta_s']:.0f}s",
                  flush=True)

    model = run_job(job, callback)
    if model.info.get("stopped_by_time"):
        print(f"time limit reached at step {model.info['steps']}; checkpoint kept in {ckpt} (resume with --resume)",
              file=sys.stderr)
    model.info["source"] = str(args.source)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes the weights
        return 0
    model.save(args.output)
    print(f"wrote {args.output} ({model.info.get('steps')} steps)")
    return 0
