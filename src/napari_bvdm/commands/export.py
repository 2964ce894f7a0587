"""``bvdm export DATASET --to FORMAT -o DIR``: image/mask pairs for Cellpose or StarDist from a CTC dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
HELP = "convert a CTC dataset (real or synthetic) for Cellpose or StarDist training, or to OME-Zarr"
DESCRIPTION = (
    "Write one image/mask pair per frame with full masks (every SEG frame of every sequence) in the layout "
    "a segmenter trains from. cellpose: NAME.tif and NAME_masks.tif in one folder (train with `python -m "
    "cellpose --train --dir DIR --mask_filter _masks`); stardist: images/NAME.tif and masks/NAME.tif. NAME "
    "is <sequence>_t<frame>; images keep their pixel type and pixel size. ome-zarr: NN.ome.zarr per sequence "
    "(NGFF image with the pixel size, labels 'tracks' and 'segmentation', the lineage as a GEFF graph "
    "'tracks.geff') plus NN_lineage.csv and NN_tracks.csv (needs pip install \"napari-bvdm[ome-zarr]\")."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..io.training_pairs import FORMATS
    from ._common import add_settings_argument

    p.add_argument("dataset", type=Path, help="CTC dataset or sequence folder (e.g. a `bvdm generate` output)")
    p.add_argument("--to", required=True, choices=[*sorted(FORMATS), "ome-zarr"],
                   help="; ".join(f"{k}: {v}" for k, v in FORMATS.items())
                   + "; ome-zarr: NGFF image + labels per sequence, GEFF lineage graph, lineage tables")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder to write (must not exist)")
    p.add_argument("--overwrite", action="store_true", help="replace the output folder")
    add_settings_argument(p)


_DEFAULTS = {"overwrite": False}


def run(args: argparse.Namespace) -> int:
    from ..io.training_pairs import export_training_pairs
    from ..runtime.progress import run_job
    from ._common import apply_settings, progress_callback

    apply_settings(args, _DEFAULTS, "export")
    if args.to == "ome-zarr":
        from ..io.ome_zarr_export import export_ome_zarr

        out = run_job(export_ome_zarr(args.dataset, args.output, overwrite=args.overwrite), progress_callback(args))
        print(f"wrote {len(list(out.glob('*.ome.zarr')))} OME-Zarr sequence(s) with their GEFF lineage graphs and "
              f"lineage tables to {out}")
        return 0
    out = run_job(export_training_pairs(args.dataset, args.output, args.to, overwrite=args.overwrite),
                  progress_callback(args))
    n = len(list(out.rglob("*.tif"))) // 2
    print(f"wrote {n} image/mask pairs for {args.to} to {out}")
    return 0
