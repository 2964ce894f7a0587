"""What a short fine-tune of the bundled texture and flow models gains on a user's own video.

For one CTC sequence (by default Fluo-C2DL-MSC 01, a cell type the bundled models never saw) the script
measures, on the same held-out tracks:

- texture: the validation loss of the bundled model, of the bundled model fine-tuned for ``--texture-minutes``
  and of a model trained from random weights for the same time (the obvious alternative), and the realism of
  each painting the held-out masks with the generate default (DPM-Solver++ 15): classifier two-sample test
  accuracy (0.5 = indistinguishable), histogram and spectrum distances against the held-out real crops;
- flow: the Dice of warped masks with the bundled model, after fine-tuning for ``--flow-minutes``, and of the
  two baselines (no warp, rigid shift).

Prints one line per figure and a JSON line at the end. Example (the GUI's defaults):
``python benchmarks/bench_finetune.py --texture-minutes 10 --flow-minutes 5 --threads 1``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def texture_figures(video, minutes: float, threads: int, scratch: bool = True) -> dict:
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.texture.crops import extract_crops
    from napari_bvdm.texture.model import TextureModel
    from napari_bvdm.texture.train import TrainConfig, _TextureRun, train_texture

    base = TextureModel.default()
    tra = video.labels.get("TRA")
    crops = extract_crops(np.asarray(video.image), np.asarray(video.dense_labels()[1]),
                          tracks=None if tra is None else np.asarray(tra), crop_size=base.config.crop_size)
    common = dict(steps=10**6, batch_size=8, max_seconds=minutes * 60, num_threads=threads, val_every=10**6,
                  checkpoint_every=10**6)
    probe = _TextureRun(crops, base.config, TrainConfig(init="bundled", **common), None)
    probe.to_device()
    probe.validate(0)
    out = {"crops": len(crops), "bundled_val_loss": round(float(probe.val_loss), 5)}
    val = probe.val_idx
    out.update(realism("bundled", base, crops, val))
    for name, init in (("finetuned", "bundled"), ("scratch", ""))[:2 if scratch else 1]:
        t0 = time.perf_counter()
        model = run_job(train_texture(crops, base.config, TrainConfig(init=init, **common)))
        out[f"{name}_val_loss"] = round(float(model.info["final_val_loss"]), 5)
        out[f"{name}_steps"] = int(model.info["steps"])
        out[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
        out.update(realism(name, model, crops, val))
    return out


def realism(name: str, model, crops, val) -> dict:
    """The model paints the held-out masks as ``bvdm generate`` would; its crops against the real ones."""
    from napari_bvdm.synthesis.config import GenerateConfig
    from napari_bvdm.texture.painter import DiffusionPainter, DiffusionPainterConfig
    from napari_bvdm.texture.realism import c2st_accuracy, histogram_distance, spectrum_distance

    t = GenerateConfig().texture
    painter = DiffusionPainter(model, t.sampler, DiffusionPainterConfig(ddim_steps=t.passes, ddim_eta=0.5,
                                                                        precision="bf16", batch_size=32))
    real, masks = crops.images[val], crops.masks[val]
    fake = painter.paint(masks, crops.brightness[val], generator=0)
    return {f"{name}_c2st": round(c2st_accuracy(real, fake, seed=0), 3),
            f"{name}_histogram": round(histogram_distance(real, fake, masks, masks), 4),
            f"{name}_spectrum": round(spectrum_distance(real, fake), 3)}


def flow_figures(video, minutes: float, threads: int) -> dict:
    from napari_bvdm.flow.model import FlowModel
    from napari_bvdm.flow.train import FlowTrainConfig, _load_pairs, _split, evaluate_pairs, train_flow
    from napari_bvdm.runtime.progress import run_job

    labels = np.asarray(video.labels["TRA"])
    cfg = FlowTrainConfig(init="bundled", steps=10**6, batch_size=8, max_seconds=minutes * 60, threads=threads,
                          val_every=10**6, checkpoint_every=10**6)
    cfg = cfg.replace(model=FlowModel.default().config)
    pairs, _ = _load_pairs(labels, cfg)
    _train, val = _split(pairs, cfg)
    before = evaluate_pairs(FlowModel.default(), val)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model = run_job(train_flow(labels, Path(tmp) / "flow.safetensors", cfg))
        seconds = time.perf_counter() - t0
    after = model.extra["validation"]
    return {"val_pairs": int(before["pairs"]), "bundled_dice": round(before["dice"], 5),
            "finetuned_dice": round(after["dice"], 5), "no_warp_dice": round(before["dice_identity"], 5),
            "rigid_shift_dice": round(before["dice_centroid_shift"], 5), "finetuned_steps": model.extra["steps"],
            "seconds": round(seconds, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA / "Fluo-C2DL-MSC" / "01")
    ap.add_argument("--texture-minutes", type=float, default=10.0)
    ap.add_argument("--flow-minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-scratch", action="store_true", help="skip the from-scratch texture training")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    import torch

    from napari_bvdm.io.readers import read_ctc

    torch.set_num_threads(args.threads)
    video = read_ctc(args.data)
    result = {"data": str(args.data), "machine": f"{platform.processor() or platform.machine()}, "
                                                  f"{torch.get_num_threads()} thread(s)"}
    result["texture"] = texture_figures(video, args.texture_minutes, args.threads, scratch=not args.no_scratch)
    print("texture", result["texture"], flush=True)
    result["flow"] = flow_figures(video, args.flow_minutes, args.threads)
    print("flow", result["flow"], flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
