"""``bvdm fit-shapes``: fit the statistical shape, motion and population model on a label video."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "fit-shapes"
HELP = "fit the shape/motion/population model on real labels (CTC folder, label TIFF or frame folder)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_settings_argument

    p.add_argument("path", type=Path, help="CTC sequence folder (e.g. DS/01), dataset folder, or label video")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.json)")
    p.add_argument("--sequence", default=None, help="CTC sequence when PATH is a dataset folder (default: first)")
    p.add_argument("--n-points", type=int, default=None, help="contour points per object (default 90)")
    p.add_argument("--variance-share", type=float, default=None,
                   help="share of shape variance the kept PCA modes explain "
                   "(default 0 = automatic: best match of the real solidity)")
    p.add_argument("--keep-outlines", type=int, default=None, metavar="N",
                   help="store up to N real outlines in the model (polygons, no pixels), so simulations can draw "
                        "real cell shapes (`--outlines real`); default 0")
    p.add_argument("--summary", action="store_true", help="print the model summary")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    add_settings_argument(p)


def run(args: argparse.Namespace) -> int:
    import time

    from ..io.readers import label_video, read_video
    from ..runtime.progress import run_job
    from ..shapes import FitConfig, fit_shape_model
    from ._common import load_settings, progress_callback

    settings = load_settings(args, "fit_shapes")
    if args.n_points is not None:
        settings["n_points"] = args.n_points
    if args.variance_share is not None:
        settings["variance_share"] = args.variance_share
    if args.keep_outlines is not None:
        settings["keep_outlines"] = args.keep_outlines
    config = FitConfig.from_dict(settings)
    _check_output(args.output, args.overwrite)
    t0 = time.perf_counter()
    video = read_video(args.path, lazy=True, sequence=args.sequence)
    if not video.labels and video.image is not None:
        video = label_video(video)  # a label TIFF / frame folder: the "image" is the label video
    model = run_job(fit_shape_model(video, config), progress_callback(args))
    model.save(args.output)
    if args.summary or not args.quiet:
        print(model.summary())
    if not model.source.get("linked", True):
        print("note: the labels are numbered frame by frame (ids do not follow the cells); they were linked into "
              "tracks by nearest position before motion and divisions were fitted")
    print(f"wrote {args.output} in {time.perf_counter() - t0:.1f} s")
    return 0


def _check_output(path: Path, overwrite: bool) -> None:
    """Refuse a folder, a name that is not .json, and an existing file without ``--overwrite``."""
    from ..io.video import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError(f"-o {path} is a folder; give the model file's name, e.g. {path / 'shapes.json'}")
    if path.suffix.lower() != ".json":
        raise InputError(f"-o {path}: a shape model file ends in .json")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another name, or add --overwrite to replace it")
    if path.exists():  # --overwrite replaces a shape model, never another file (e.g. a dataset's synthesis.json)
        import json

        from ..shapes.model import ShapeModelError, _check_kind

        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # not JSON: nothing of napari-bvdm's is lost
        try:
            _check_kind(data, str(path))
        except ShapeModelError as e:
            raise InputError(f"-o {e.args[0].split(', not a napari-bvdm shape model')[0]}, not a shape model; "
                             "--overwrite replaces only a shape model file: choose another name") from None
