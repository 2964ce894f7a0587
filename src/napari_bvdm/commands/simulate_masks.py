"""``bvdm simulate-masks``: simulate a label-only CTC sequence from a shape model."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "simulate-masks"
HELP = "simulate an annotated mask video (label-only CTC folder) from a fitted shape model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_settings_argument

    p.add_argument("model", help="shape model file from `bvdm fit-shapes`, or 'default' for the bundled model")
    p.add_argument("-o", "--output", type=Path, required=True, help="CTC dataset folder to write")
    p.add_argument("--frames", type=int, default=None, help="number of frames (default 50)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None, help="canvas size (default 512 512)")
    p.add_argument("--cells", type=int, default=None, help="cells in the first frame (default: fitted density)")
    p.add_argument("--density-scale", type=float, default=None,
                   help="with the fitted density (no --cells): multiply it, e.g. 1.5 for a more crowded video with "
                        "more cells touching (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--no-divisions", action="store_true", help="switch divisions off")
    p.add_argument("--outlines", choices=("model", "real"), default=None,
                   help="cell outlines: model (radial contour PCA, default) or real (the real outlines stored in "
                        "the model by `bvdm fit-shapes --keep-outlines N`)")
    p.add_argument("--sequence", default="01", help="sequence name")
    p.add_argument("--overwrite", action="store_true", help="replace an existing sequence")
    add_settings_argument(p)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from ..io.ctc_writer import CTCSequenceWriter
    from ..io.validator import format_report, validate_ctc
    from ..runtime.progress import run_job
    from ..shapes import ShapeModel, SimulationConfig, simulate_masks
    from ._common import load_settings, progress_callback

    settings = load_settings(args, "simulate_masks")
    for key, val in (("frames", args.frames), ("cells", args.cells), ("seed", args.seed), ("outlines", args.outlines),
                     ("density_scale", args.density_scale)):
        if val is not None:
            settings[key] = val
    if args.size is not None:
        settings["height"], settings["width"] = args.size
    if args.no_divisions:
        settings["divisions"] = False
    config = SimulationConfig.from_dict(settings)
    model = ShapeModel.default() if args.model == "default" else ShapeModel.load(args.model)
    t0 = time.perf_counter()
    with CTCSequenceWriter(args.output, args.sequence, n_frames=config.frames, overwrite=args.overwrite) as writer:
        masks = run_job(simulate_masks(model, config, sink=lambda t, f: writer.write_frame(t, None, f)),
                        progress_callback(args))
        out = writer.close(masks.lineage)
    gt = Path(out) / f"{args.sequence}_GT"
    attrs = {"config": config.to_dict(), "stats": masks.stats, "normalisation": masks.normalisation,
             "background": masks.background,
             "brightness": {str(k): v.round(5).tolist() for k, v in masks.brightness.items()},
             "stage": {str(k): v.tolist() for k, v in masks.stage.items()}}
    (gt / "cell_attributes.json").write_text(json.dumps(attrs) + "\n")
    problems = validate_ctc(gt, n_frames=config.frames)
    if problems:
        print(format_report(problems, gt))
        return 1
    print(f"wrote {gt} ({config.frames} frames, {len(masks.lineage)} tracks, "
          f"{int(masks.stats['divisions'])} divisions) in {time.perf_counter() - t0:.1f} s; valid CTC")
    return 0
