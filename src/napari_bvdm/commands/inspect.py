"""``bvdm inspect PATH``: say what a video file, frame folder or CTC folder holds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

NAME = "inspect"
HELP = "describe a TIFF video, a folder of frames or a CTC dataset/sequence (frames, size, dtype, labels, tracks)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_settings_argument

    p.add_argument("path", type=Path, help="TIFF file, folder of TIFF frames, CTC sequence or dataset folder")
    p.add_argument("--sequence", default=None, help="CTC dataset: which sequence (default the first)")
    p.add_argument("--stats", action="store_true",
                   help="also read every frame: intensity range, percentiles, objects per frame, sizes")
    p.add_argument("--validate", action="store_true", help="CTC: also run the validator (as bvdm validate)")
    add_settings_argument(p)


_DEFAULTS = {"sequence": None, "stats": False, "validate": False}


def run(args: argparse.Namespace) -> int:
    from ._common import apply_settings

    apply_settings(args, _DEFAULTS, "inspect")
    import numpy as np

    from ..io.readers import read_video

    video = read_video(args.path, lazy=True, sequence=args.sequence, check=False)
    print(video.describe())
    meta = video.meta
    print(f"format: {meta.get('format')}"
          + (f", sequence {meta['sequence']}" if meta.get("sequence") else "")
          + (f" (also in the dataset: {', '.join(meta['other_sequences'])})" if meta.get("other_sequences") else ""))
    if meta.get("st_frames"):
        print(f"ST annotated frames: {len(meta['st_frames'])}")
    for w in meta.get("warnings", []):
        print(f"warning: {w}")
    if args.stats:
        if video.image is not None:
            sample = np.stack([np.asarray(video.image[t]) for t in
                               np.unique(np.linspace(0, video.n_frames - 1, 8).round().astype(int))])
            p = np.percentile(sample, [1, 50, 99])
            print(f"intensity: min {sample.min()}, max {sample.max()}, 1/50/99th percentile "
                  f"{p[0]:.1f} / {p[1]:.1f} / {p[2]:.1f} ({len(sample)} frames)")
        main = video.main_labels()
        if main is not None:
            kind, lab = main
            counts, sizes = [], []
            for t in range(video.n_frames):
                px = _object_sizes(np.asarray(lab[t]))
                counts.append(len(px))
                sizes.extend(px.tolist())
            print(f"{kind} objects per frame: min {min(counts)}, mean {np.mean(counts):.1f}, max {max(counts)}"
                  + (f"; median object size {int(np.median(sizes))} px" if sizes else ""))
    if args.validate and meta.get("format") == "ctc":
        from ..io.validator import validate_ctc

        problems = validate_ctc(Path(meta["dataset"]) / meta["sequence"])
        print("validation: " + ("valid" if not problems else f"{len(problems)} problem(s)"))
        for v in problems[:20]:
            print(f"  {v}")
        return 0 if not problems else 1
    return 0


def _object_sizes(frame: np.ndarray) -> np.ndarray:
    """Pixel count of every non-zero label in one label frame."""
    import numpy as np

    if frame.size and frame.dtype.kind in "ub" and int(frame.max()) < 2**20:
        px = np.bincount(frame.ravel())
        px[0] = 0
        return px[px > 0]
    ids, px = np.unique(frame, return_counts=True)
    return px[ids != 0]
