"""Train-on-synthetic / test-on-real evaluation: tracker, ground-truth window, training, scoring, CLI.

Tiny models and tiny frames: these tests check that the pipeline produces valid CTC results and
scores in [0, 1], not the targets of the full-scale comparison (see docs/evaluation.md).
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from napari_bvdm.evaluate.data import (
    load_sequence,
    relabel_tracks,
    split_frames,
    training_pairs,
    window_images,
    write_gt_window,
)
from napari_bvdm.evaluate.experiment import ExperimentConfig
from napari_bvdm.evaluate.segnet import SegNetConfig, instances_from_probs, load_segnet, save_segnet
from napari_bvdm.evaluate.tracker import track_instances
from napari_bvdm.evaluate.train import TrainConfig, prepare_pool, train_segnet
from napari_bvdm.io.video import InputError
from napari_bvdm.runtime.config import ConfigError
from napari_bvdm.runtime.progress import run_job


def _disc(canvas, cy, cx, r, value):
    yy, xx = np.ogrid[: canvas.shape[0], : canvas.shape[1]]
    canvas[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value


def _toy():
    """The toy sequence of ctc-format.md §6.1: 5 frames, a division at t = 3."""
    tra = np.zeros((5, 96, 128), np.uint16)
    for t in range(5):
        _disc(tra[t], 25, 20 + 8 * t, 9, 1)
        _disc(tra[t], 20 + 6 * t, 100, 9, 2)
        if t <= 2:
            _disc(tra[t], 70, 40 + 3 * t, 9, 3)
        else:
            _disc(tra[t], 62 - 3 * (t - 3), 50, 9, 4)
            _disc(tra[t], 80 + 3 * (t - 3), 50, 9, 5)
    lin = np.array([[1, 0, 4, 0], [2, 0, 4, 0], [3, 0, 2, 0], [4, 3, 4, 3], [5, 3, 4, 3]], np.int64)
    return tra, lin


def _shuffled_instances(tra, seed=0):
    """Per-frame instance labels with arbitrary ids (what a segmenter gives)."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(tra)
    for t in range(tra.shape[0]):
        ids = np.unique(tra[t])[1:]
        for new, old in zip(rng.permutation(len(ids)) + 1, ids, strict=True):
            out[t][tra[t] == old] = new
    return out


def test_tracker_recovers_toy_lineage_and_scores_one(tmp_path):
    pytest.importorskip("ctc_metrics")
    from napari_bvdm.evaluate.data import write_ctc_labels
    from napari_bvdm.evaluate.scoring import score_result, validate_result, write_res

    tra, lin = _toy()
    tracks, lineage = track_instances(_shuffled_instances(tra))
    # 3 straight tracks + the division 3 -> two daughters
    assert len(lineage) == 5
    kids = lineage[lineage[:, 3] > 0]
    assert len(kids) == 2 and len(set(kids[:, 3])) == 1 and np.all(kids[:, 1] == 3)
    mother = lineage[lineage[:, 0] == kids[0, 3]][0]
    assert mother[2] == 2
    write_ctc_labels(tmp_path / "01_GT" / "TRA", "man_track", tra, lin, "man_track.txt")
    write_ctc_labels(tmp_path / "01_GT" / "SEG", "man_seg", tra, None, None)
    write_res(tmp_path / "01_RES", tracks, lineage)
    assert validate_result(tmp_path / "01_RES")
    s = score_result(tmp_path / "01_RES", tmp_path / "01_GT")
    assert s == {"SEG": 1.0, "DET": 1.0, "TRA": 1.0, "LNK": 1.0, "Valid": 1.0}


def test_empty_result_scores_zero(tmp_path):
    """A network that finds no cell gives an empty result: zeros, not a crash of py-ctcmetrics."""
    pytest.importorskip("ctc_metrics")
    from napari_bvdm.evaluate.data import write_ctc_labels
    from napari_bvdm.evaluate.scoring import score_result, write_res

    tra, lin = _toy()
    write_ctc_labels(tmp_path / "01_GT" / "TRA", "man_track", tra, lin, "man_track.txt")
    write_ctc_labels(tmp_path / "01_GT" / "SEG", "man_seg", tra, None, None)
    tracks, lineage = track_instances(np.zeros_like(tra))
    assert len(lineage) == 0
    write_res(tmp_path / "01_RES", tracks, lineage)
    assert (tmp_path / "01_RES" / "res_track.txt").read_text().strip() == ""
    s = score_result(tmp_path / "01_RES", tmp_path / "01_GT")
    assert s == {"SEG": 0.0, "DET": 0.0, "TRA": 0.0, "LNK": 0.0, "Valid": 1.0}


def test_tra_error_counts_say_where_tracking_loses(tmp_path):
    """The AOGM counts behind TRA: a cell missed in one frame is one FN vertex and its two links;
    an empty result misses every vertex and edge, at the cost AOGM_0 that py-ctcmetrics reports."""
    pytest.importorskip("ctc_metrics")
    from napari_bvdm.evaluate.data import write_ctc_labels
    from napari_bvdm.evaluate.experiment import error_table
    from napari_bvdm.evaluate.scoring import AOGM_ERRORS, score_result

    tra, lin = _toy()
    write_ctc_labels(tmp_path / "01_GT" / "TRA", "man_track", tra, lin, "man_track.txt")
    write_ctc_labels(tmp_path / "01_GT" / "SEG", "man_seg", tra, None, None)
    masks = _shuffled_instances(tra)
    perfect = score_result(_result(tmp_path / "a", masks), tmp_path / "01_GT", ["TRA"], errors=True)
    assert perfect["TRA"] == 1.0 and perfect["AOGM"] == 0.0
    assert all(perfect[f"AOGM_{e}"] == 0 for e in AOGM_ERRORS)
    # 17 vertices (tracks 1, 2: 5 frames; 3: 3; 4, 5: 2), 12 plain links + 2 division links
    assert perfect["AOGM_0"] == 10 * 17 + 1.5 * 14
    masks[2][tra[2] == 2] = 0  # cell 2 missed at t = 2
    hole = score_result(_result(tmp_path / "b", masks), tmp_path / "01_GT", ["DET", "TRA"], errors=True)
    assert hole["AOGM_FN"] == 1 and hole["AOGM_FP"] == 0 and hole["AOGM_NS"] == 0 and hole["AOGM_EA"] == 2
    assert hole["AOGM"] == sum(w * hole[f"AOGM_{e}"] for e, w in AOGM_ERRORS.items())
    assert hole["TRA"] == pytest.approx(1 - hole["AOGM"] / hole["AOGM_0"])
    assert hole["DET"] < 1.0
    empty = score_result(_result(tmp_path / "c", np.zeros_like(tra)), tmp_path / "01_GT", ["TRA"], errors=True)
    assert empty["TRA"] == 0.0 and empty["AOGM_FN"] == 17 and empty["AOGM"] == empty["AOGM_0"] == perfect["AOGM_0"]
    assert "AOGM" not in score_result(tmp_path / "a" / "01_RES", tmp_path / "01_GT", ["TRA"])  # only when asked
    runs = [{"set": "real", "seed": 0, **perfect}, {"set": "synthetic", "seed": 0, **hole},
            {"set": "synthetic", "seed": 1, **empty}]
    table = "\n".join(error_table(runs))
    assert "| real | 0.0 | 0.0 | 0.0 |" in table and "| synthetic | 0.0 | 9.0 |" in table  # FN (1 + 17) / 2
    assert error_table([{"set": "real", "seed": 0, "TRA": 1.0}]) == []


def _result(folder, masks):
    from napari_bvdm.evaluate.scoring import write_res

    tracks, lineage = track_instances(masks)
    return write_res(folder / "01_RES", tracks, lineage)


def test_tracker_without_divisions_gives_root_tracks():
    from napari_bvdm.evaluate.tracker import TrackerConfig

    tra, _ = _toy()
    _, lineage = track_instances(tra, TrackerConfig(divisions=False))
    assert np.all(lineage[:, 3] == 0)


def test_relabel_tracks_splits_gaps_and_relinks_parents():
    tra = np.zeros((5, 8, 8), np.uint16)
    tra[0:2, 1, 1] = 7  # 7 present at t0-1, missing t2, back at t3
    tra[3, 1, 1] = 7
    tra[3:5, 5, 5] = 9  # daughter of 7 (which ended at t1 in the original)
    tra[2:4, 6, 1] = 3  # daughter of a parent outside the window
    lin = np.array([[7, 0, 3, 0], [9, 3, 4, 7], [3, 2, 3, 42]], np.int64)
    new, rows = relabel_tracks(tra, lin)
    by = {tuple(r[1:3]): r for r in rows}
    first7, back7, nine, three = by[(0, 1)], by[(3, 3)], by[(3, 4)], by[(2, 3)]
    assert back7[3] == first7[0]  # returning cell: new label, parent = old segment
    assert nine[3] == 0  # parent 7 still present at t3 -> its last run ends at t3, not before t3
    assert three[3] == 0  # parent absent from the window
    assert new[3, 1, 1] == back7[0] and new[0, 1, 1] == first7[0]
    assert sorted(rows[:, 0]) == list(range(1, len(rows) + 1))


def test_split_frames_and_bad_input():
    tr, te = split_frames(92)
    assert (tr.start, tr.stop, te.start, te.stop) == (0, 46, 46, 92)
    with pytest.raises(InputError):
        split_frames(1)
    with pytest.raises(ConfigError, match="sets"):
        ExperimentConfig(real="x", sets=("real", "gan"))
    with pytest.raises(ConfigError, match="crop"):
        ExperimentConfig.from_dict({"real": "x", "crop": [8]})


def test_watershed_separates_touching_cells():
    probs = np.zeros((3, 40, 40), np.float32)
    probs[0] = 1.0
    lab = np.zeros((40, 40), np.uint16)
    _disc(lab, 20, 12, 7, 1)
    _disc(lab, 20, 26, 7, 2)
    from napari_bvdm.evaluate.segnet import make_targets

    tgt = make_targets(lab)
    for k in range(3):
        probs[k] = tgt == k
    inst = instances_from_probs(probs, SegNetConfig())
    assert inst.max() == 2 and inst.dtype == np.uint16


def test_gowt1_gt_window_is_valid_ctc(gowt1, tmp_path):
    pytest.importorskip("ctc_metrics")
    import shutil

    from napari_bvdm.evaluate.scoring import score_result, validate_result

    v = load_sequence(gowt1 / "01")
    _, te = split_frames(20)
    info = write_gt_window(v, te, tmp_path / "01_GT", factor=4, crop=(128, 160))
    assert info["frames"] == 10 and info["seg_frames"] == 8  # 10, 12-18
    assert window_images(v, te, factor=4, crop=(128, 160)).shape == (10, 128, 160)
    # the relabelled GT, presented as a result, is valid and scores 1 against itself
    res = tmp_path / "01_RES"
    res.mkdir()
    for f in (tmp_path / "01_GT" / "TRA").glob("man_track*.tif"):
        shutil.copy(f, res / f.name.replace("man_track", "mask"))
    shutil.copy(tmp_path / "01_GT" / "TRA" / "man_track.txt", res / "res_track.txt")
    assert validate_result(res)
    s = score_result(res, tmp_path / "01_GT", ["DET", "TRA"])
    assert s["DET"] == 1.0 and s["TRA"] == 1.0 and math.isnan(s.get("SEG", math.nan))


@pytest.mark.slow
def test_training_is_seeded_and_weights_round_trip(gowt1, tmp_path):
    import torch

    v = load_sequence(gowt1 / "01")
    pairs = training_pairs(v, range(0, 8), factor=8)
    assert [p.source.rsplit(":", 1)[1] for p in pairs] == ["2", "5", "6", "7"]  # SEG frames only
    # GOWT1 SEG frame 2 annotates 2 of 23 cells: the other cells' surroundings are ignored, not background
    from scipy import ndimage as ndi

    first = pairs[0]
    assert len(np.unique(first.instances)) == 3
    assert first.ignore is not None and not (first.ignore & (first.instances > 0)).any()
    assert ndi.label(first.ignore)[1] >= 15
    net = SegNetConfig(base_channels=4, depth=2)
    cfg = TrainConfig(steps=3, batch_size=2, patch_size=32, device="cpu", report_every=1)
    pool = prepare_pool("real", pairs, net)
    events = []
    m1 = run_job(train_segnet([pool], net, cfg), events.append)
    m2 = run_job(train_segnet([pool], net, cfg))
    assert [e.step for e in events] == [1, 2, 3] and all(np.isfinite(e.metrics["loss"]) for e in events)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    path = save_segnet(tmp_path / "seg.safetensors", m1, net)
    m3, cfg3, _ = load_segnet(path)
    assert cfg3 == net
    x = torch.rand(1, 1, 32, 32)
    assert torch.allclose(m1(x), m3(x))


@pytest.mark.slow
def test_intensity_augmentation_is_seeded_and_changes_only_intensities():
    """--augment intensity: a random contrast/brightness/gamma/blur/noise per patch, the same for a seed."""
    import torch

    from napari_bvdm.evaluate.data import Pair
    from napari_bvdm.evaluate.train import augment_intensity

    rng = np.random.default_rng(0)
    cells = np.zeros((48, 48), np.int32)
    _disc(cells, 14, 14, 7, 1)
    _disc(cells, 32, 30, 8, 2)
    img = ((cells > 0) * 1.0 + rng.normal(0, 0.1, cells.shape)).astype(np.float32)
    outs = [augment_intensity(img, np.random.default_rng(s)) for s in range(20)]
    assert all(o.shape == img.shape and o.dtype == np.float32 and np.isfinite(o).all() for o in outs)
    assert np.array_equal(outs[3], augment_intensity(img, np.random.default_rng(3)))
    changed = [not np.allclose(o, img) for o in outs]
    assert sum(changed) >= 15  # p 0.8 for contrast alone
    inside, outside = cells > 0, cells == 0
    assert all(o[inside].mean() > o[outside].mean() for o in outs)  # cells stay brighter: labels still hold
    net = SegNetConfig(base_channels=4, depth=2)
    pool = prepare_pool("toy", [Pair(img, cells)], net)
    models = {}
    for aug in ("none", "intensity", "intensity"):
        cfg = TrainConfig(steps=2, batch_size=2, patch_size=32, device="cpu", augment=aug)
        models.setdefault(aug, []).append(run_job(train_segnet([pool], net, cfg)))
    def same(m1, m2):
        return all(torch.equal(x, y) for x, y in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))

    assert same(*models["intensity"])  # seeded
    assert not same(models["none"][0], models["intensity"][0])  # the patches differed
    with pytest.raises(ConfigError, match="augment"):
        TrainConfig(augment="elastic")


@pytest.mark.slow
def test_phases_train_on_one_pool_then_the_other():
    """Pre-train / fine-tune curriculum: the steps of each phase draw only from that phase's pool."""
    from napari_bvdm.evaluate.data import Pair
    from napari_bvdm.evaluate.experiment import _mixing

    rng = np.random.default_rng(0)
    cells = np.zeros((48, 48), np.int32)
    _disc(cells, 14, 14, 7, 1)
    _disc(cells, 32, 30, 8, 2)
    img = (cells > 0) * 1.0 + rng.normal(0, 0.1, cells.shape)
    net = SegNetConfig(base_channels=4, depth=2)
    annotated = prepare_pool("annotated", [Pair(img, cells)], net)
    # every pixel ignored: no loss, so a step drawn from it reports exactly 0
    blank = prepare_pool("blank", [Pair(img, cells, ignore=np.ones(cells.shape, bool))], net)
    cfg = TrainConfig(steps=6, batch_size=2, patch_size=32, device="cpu", report_every=1)
    events = []
    run_job(train_segnet([annotated, blank], net, cfg, phases=[(0.5, (0, 1)), (0.5, (1, 0))]), events.append)
    losses = [e.metrics["loss"] for e in events]
    assert losses[:3] == [0.0, 0.0, 0.0] and all(v > 0 for v in losses[3:])
    with pytest.raises(InputError, match="not both"):
        run_job(train_segnet([annotated, blank], net, cfg, weights=(1, 1), phases=[(1, (1, 1))]))
    with pytest.raises(InputError, match="non-negative"):
        run_job(train_segnet([annotated, blank], net, cfg, phases=[(1, (0, 0))]))
    with pytest.raises(InputError, match="2 non-negative"):
        run_job(train_segnet([annotated, blank], net, cfg, weights=(1, 1, 1)))
    # how bvdm evaluate turns real_share into the weights of a mixed set
    assert _mixing(["real"], 0.5) == {}
    assert _mixing(["real", "synthetic"], 0.7) == {"weights": (0.7, pytest.approx(0.3))}
    with pytest.raises(ConfigError, match="real_share"):
        ExperimentConfig(real="x", real_share=1.0)


@pytest.mark.slow
def test_bvdm_evaluate_tiny_end_to_end(gowt1, simplus, tmp_path, capsys):
    """`bvdm evaluate` on 16 GOWT1 frames at 1/8 scale with SIM+ standing in for synthetic data."""
    pytest.importorskip("ctc_metrics")
    import json

    from napari_bvdm.cli import main

    out = tmp_path / "eval"
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"train": {"batch_size": 4, "patch_size": 48}, "net": {"base_channels": 4},
                               "max_frames": 16, "max_synthetic_frames": 6}))
    argv = ["evaluate", "--real", str(gowt1 / "01"), "--synthetic", str(simplus / "01"), "-o", str(out),
            "--sets", "real", "synthetic", "--seeds", "0", "--steps", "30", "--downsample", "8",
            "--synthetic-downsample", "4", "--device", "cpu", "--config", str(cfg), "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| real |" in text and "| synthetic |" in text
    with (out / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["set"] for r in rows] == ["real", "synthetic"]
    for r in rows:
        assert float(r["Valid"]) == 1.0
        for m in ("SEG", "DET", "TRA", "LNK"):
            assert 0.0 <= float(r[m]) <= 1.0
        aogm = float(r["AOGM"])  # the errors behind TRA are recorded with every run
        assert float(r["TRA"]) == pytest.approx(1 - min(aogm, float(r["AOGM_0"])) / float(r["AOGM_0"]), abs=1e-5)
    for name in ("summary.csv", "summary.md", "scores.png", "config.json", "info.json"):
        assert (out / name).is_file()
    assert "Errors behind TRA" in (out / "summary.md").read_text()
    assert sorted(p.name for p in (out / "runs" / "real-seed0" / "01_RES").iterdir())[-1] == "res_track.txt"
    # a second run into the same folder is refused; --resume with the same settings does nothing new
    assert main(argv) == 2
    assert main([*argv, "--resume"]) == 0
    with (out / "runs.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2


def test_bvdm_evaluate_mixed_set_options(gowt1, simplus, tmp_path, capsys):
    """real+synthetic with a given real share: recorded in config.json, valid result; bad settings are named."""
    pytest.importorskip("ctc_metrics")
    import json

    from napari_bvdm.cli import main

    out = tmp_path / "mixed"
    cfg = tmp_path / "mixed.json"
    settings = {"train": {"batch_size": 2, "patch_size": 48}, "net": {"base_channels": 4}, "max_frames": 16,
                "max_synthetic_frames": 4, "real_share": 0.4}
    cfg.write_text(json.dumps(settings))
    argv = ["evaluate", "--real", str(gowt1 / "01"), "--synthetic", str(simplus / "01"), "-o", str(out),
            "--sets", "real+synthetic", "--seeds", "1", "--steps", "10", "--downsample", "8",
            "--synthetic-downsample", "4", "--device", "cpu", "--quiet", "--config", str(cfg)]
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["real_share"] == 0.4
    assert json.loads((out / "info.json").read_text())["pool_sizes"] == {"real": 4, "synthetic": 4}  # SEG 2, 5-7
    with (out / "runs.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["set"] == "real+synthetic" and float(row["Valid"]) == 1.0 and 0.0 <= float(row["TRA"]) <= 1.0
    cfg.write_text(json.dumps({**settings, "mix": "pretrain"}))  # a retired setting: a clear error, nothing run
    assert main([*argv[:2], str(gowt1 / "01"), "-o", str(tmp_path / "bad"), "--config", str(cfg)]) == 2
    assert "mix" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_downsampled_training_video_keeps_valid_lineage(gowt1):
    from napari_bvdm.evaluate.synthetic_sets import SyntheticSetsConfig, _downsample_video

    v = load_sequence(gowt1 / "01").frames(0, 6)
    v.image = np.asarray(v.image)
    v.labels = {k: np.asarray(a) for k, a in v.labels.items()}
    _downsample_video(v, 8)
    assert v.image.shape == (6, 128, 128) and v.image.dtype == np.uint8
    tra = v.labels["TRA"]
    for lab, b, e, p in v.lineage:
        for t in range(tra.shape[0]):
            assert ((tra[t] == lab).any()) == (b <= t <= e)
        assert p == 0 or v.lineage[v.lineage[:, 0] == p][0, 2] < b
    with pytest.raises(ConfigError, match="downsample"):
        SyntheticSetsConfig(downsample=0)
    from napari_bvdm.evaluate.synthetic_sets import TextureTraining

    with pytest.raises(ConfigError, match="max_minutes"):
        TextureTraining(max_minutes=float("nan"))


def test_bvdm_evaluate_generate_rejects_incompatible_scales(tmp_path, capsys):
    import json

    from napari_bvdm.cli import main

    (tmp_path / "cfg.json").write_text(json.dumps({"generate": {"downsample": 2}}))
    argv = ["evaluate", "--real", str(tmp_path), "--generate", "--downsample", "3", "--config",
            str(tmp_path / "cfg.json"), "-o", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "multiple of the generation's downsample" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_summary_and_targets_from_runs():
    from napari_bvdm.evaluate.experiment import (
        check_targets,
        paired_differences,
        paired_wins,
        summarise,
        summary_markdown,
        target_gaps,
    )

    runs = [{"set": s, "seed": k, "SEG": v + 0.01 * k, "DET": 0.9, "TRA": t, "LNK": 0.8}
            for s, v, t in (("real", 0.70, 0.90), ("synthetic", 0.68, 0.91), ("real+synthetic", 0.75, 0.92),
                            ("classical", 0.60, 0.85)) for k in range(3)]
    summ = summarise(runs)
    mu, sd, n = summ["real"]["SEG"]
    assert n == 3 and mu == pytest.approx(0.71) and sd == pytest.approx(0.01)
    t = check_targets(summ)
    assert all(t.values())
    d, psd = target_gaps(summ)["synthetic SEG above classical"]
    assert d == pytest.approx(0.08) and psd == pytest.approx(0.01)
    md = summary_markdown(summ, targets=t, skipped={"x": "no data"}, runs=runs)
    assert "| real | 0.710 ± 0.010 (3)" in md and "+0.0800" in md and "x skipped: no data" in md
    assert "| +0.0800 | 0.0100 | 3 of 3 | +0.0800 ± 0.0000 |" in md
    runs[6]["SEG"] = 0.5  # real+synthetic seed 0 below real seed 0
    assert paired_wins(runs)["real+synthetic SEG above real"] == (2, 3)
    assert paired_wins(runs[:3])["real+synthetic SEG above real"] == (0, 0)
    d, se, n = paired_differences(runs)["real+synthetic SEG above real"]  # +0.05 twice, 0.5 - 0.70 once
    assert n == 3 and d == pytest.approx((0.05 + 0.05 - 0.20) / 3)
    assert se == pytest.approx(np.std([0.05, 0.05, -0.2], ddof=1) / np.sqrt(3))
    assert math.isnan(paired_differences(runs[:3] + runs[6:7])["real+synthetic SEG above real"][1])  # one seed
    runs[3]["SEG"] = 0.66  # synthetic seed 0 more than 0.03 below real seed 0 (0.70)
    assert paired_wins(runs)["synthetic SEG within 0.03 of real"] == (2, 3)
    assert check_targets(summarise(runs[:3]))["synthetic SEG above classical"] is None


def test_seg_breakdown_counts_merged_neighbours(tmp_path):
    """benchmarks/seg_breakdown.py: a prediction that bridges two nearby cells is a merge; SEG by the CTC rule."""
    import importlib.util
    from pathlib import Path

    import tifffile

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "seg_breakdown.py"
    spec = importlib.util.spec_from_file_location("seg_breakdown", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    gt = np.zeros((64, 64), np.uint16)
    gt[10:20, 10:20] = 1  # cells 1 and 2, 4 px apart: isolated (no other cell within 2 px)
    gt[10:20, 24:34] = 2
    gt[40:50, 40:50] = 3  # alone, predicted exactly
    res = np.zeros_like(gt)
    res[10:20, 10:28] = 5  # all of cell 1, the gap and 40 % of cell 2
    res[40:50, 40:50] = 7
    run = tmp_path / "runs" / "synthetic-seed0"
    (tmp_path / "gt" / "01_GT" / "SEG").mkdir(parents=True)
    (run / "01_RES").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "gt" / "01_GT" / "SEG" / "man_seg000.tif", gt)
    tifffile.imwrite(run / "01_RES" / "mask000.tif", res)
    touching, iou, merged, missed, added = zip(*[r[:5] for r in mod.cell_rows(run)], strict=True)
    assert touching == (False, False, False) and merged == (True, False, False)
    assert iou == (pytest.approx(100 / 180), 0.0, 1.0) and added[0] == pytest.approx(0.8) and missed[1] == 1.0
    assert mod.cell_rows(run, touch_px=5)[0][0]  # 4 px apart touch at --touch 5
    assert mod.main([f"ours={run}"]) == 0


def test_bench_gap_of_a_sequence_with_itself_is_zero(tmp_path, capsys):
    """benchmarks/bench_gap.py: real against the same frames gives no gap, and every measure is a number."""
    import importlib.util
    import json
    from pathlib import Path

    from napari_bvdm.io.ctc_writer import export_ctc
    from napari_bvdm.io.toy import toy_sequence

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gap.py"
    spec = importlib.util.spec_from_file_location("bench_gap", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    image, labels, lineage = toy_sequence()
    export_ctc(tmp_path / "toy", image, labels, lineage)
    assert mod.main(["--real", str(tmp_path / "toy" / "01"), "--synthetic", str(tmp_path / "toy"),
                     "--json", str(tmp_path / "gap.json")]) == 0
    res = json.loads((tmp_path / "gap.json").read_text())
    assert res["cells"] == {"real": 17, "synthetic": 17}  # 5 frames: 3 + 3 + 3 + 4 + 4 discs
    assert res["boundary"]["gap"] == 0 and res["texture"]["gap"] == 0 and res["size_brightness"]["ks_log_area"] == 0
    assert res["clustering"]["closer_than_1_2"]["real"] == res["clustering"]["closer_than_1_2"]["synthetic"]
    assert 0.5 < res["boundary"]["profile_real"][0] < 1.5 and "inner spectrum gap" in capsys.readouterr().out
