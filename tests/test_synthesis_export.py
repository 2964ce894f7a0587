"""Dataset export (atomic per video, validated, synthesis.json, seed ranges) and the `bvdm generate` CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
import torch

from napari_bvdm.flow import FlowConfig, FlowModel
from napari_bvdm.io.validator import validate_ctc
from napari_bvdm.runtime.progress import Cancelled, CancelToken, run_job
from napari_bvdm.synthesis import SceneStats, SynthesisConfig
from napari_bvdm.synthesis.export import SYNTHESIS_JSON, MaskSet, export_dataset, video_seed
from napari_bvdm.texture.painter import ClassicalPainter

SCENE = SceneStats(level=0.05, noise=0.02, noise_corr=0.3, cell_brightness=(0.4, 0.05),
                   normalisation={"offset": 10.0, "scale": 200.0, "dtype": "uint16"})


def _toy_labels(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Two cells moving right; cell 1 divides at t = 4 into 3 and 4."""
    lab = np.zeros((n_frames, 64, 80), np.uint16)
    for t in range(n_frames):
        lab[t, 40:52, 10 + t:24 + t] = 2
        if t < 4:
            lab[t, 8:24, 20 + t:34 + t] = 1
        else:
            lab[t, 4:14, 20 + t:34 + t] = 3
            lab[t, 18:28, 20 + t:34 + t] = 4
    lineage = np.array([[1, 0, 3, 0], [2, 0, n_frames - 1, 0], [3, 4, n_frames - 1, 1], [4, 4, n_frames - 1, 1]])
    return lab, lineage


@pytest.fixture
def flow_file(tmp_path):
    torch.manual_seed(0)
    m = FlowModel(FlowConfig(encoder=(4, 8), decoder=(8, 8), crop_size=32))
    return m.save(tmp_path / "flow.safetensors")


def _export(out, flow_file, cancel=None, **kw):
    labels, lineage = _toy_labels(6)
    painter = ClassicalPainter(normalisation=SCENE.norm, crop_size=32)
    flow = FlowModel.load(flow_file)
    kw.setdefault("n_videos", 2)
    return export_dataset(out, MaskSet(labels, lineage), painter, flow, SCENE, SynthesisConfig(seed=5),
                          model_files={"flow": flow_file}, cancel=cancel, **kw)


def _sequences(path):
    return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))


def test_export_writes_valid_ctc_and_a_complete_record(tmp_path, flow_file):
    out = run_job(_export(tmp_path / "ds", flow_file))
    assert validate_ctc(out) == []
    assert _sequences(out) == ["01", "01_GT", "02", "02_GT", SYNTHESIS_JSON]
    assert len(list((out / "01_GT" / "SEG").glob("man_seg*.tif"))) == 6
    track = (out / "01_GT" / "TRA" / "man_track.txt").read_text().split("\n")
    assert track[:4] == ["1 0 3 0", "2 0 5 0", "3 4 5 1", "4 4 5 1"]
    rec = json.loads((out / SYNTHESIS_JSON).read_text())
    assert rec["version"] == 2 and sorted(rec["videos"]) == ["01", "02"]
    assert "seed" not in json.dumps(rec["videos"]) and "seed" not in rec["run"]["engine"]  # video n: seed + n - 1
    assert video_seed(5, 2) == 6
    mask = os.umask(0)
    os.umask(mask)
    assert (out / SYNTHESIS_JSON).stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    run = rec["run"]
    assert run["engine"]["tf0"] == 200 and run["scene"]["noise"] == SCENE.noise
    assert len(run["models"]["flow"]["sha256"]) == 64
    # images differ between videos (different seeds), labels are the given masks
    a = tifffile.imread(out / "01" / "t003.tif")
    b = tifffile.imread(out / "02" / "t003.tif")
    assert a.dtype == np.uint16 and not np.array_equal(a, b)


def test_a_video_can_be_regenerated_from_its_number_and_seed(tmp_path, flow_file):
    full = run_job(_export(tmp_path / "full", flow_file, n_videos=2))
    part = run_job(_export(tmp_path / "part", flow_file, n_videos=1, first_video=2))
    assert _sequences(part) == ["02", "02_GT", SYNTHESIS_JSON]
    for t in range(6):
        assert np.array_equal(tifffile.imread(full / "02" / f"t{t:03d}.tif"),
                              tifffile.imread(part / "02" / f"t{t:03d}.tif"))
    # a second process filling 03 into the same dataset adds to the record
    run_job(_export(tmp_path / "full", flow_file, n_videos=1, first_video=3))
    rec = json.loads((full / SYNTHESIS_JSON).read_text())
    assert sorted(rec["videos"]) == ["01", "02", "03"] and validate_ctc(full) == []


def test_cancel_removes_only_the_unfinished_video(tmp_path, flow_file):
    token = CancelToken()
    job = _export(tmp_path / "ds", flow_file, cancel=token, n_videos=3)
    with pytest.raises(Cancelled):
        for ev in job:
            if "02" in ev.message and ev.step >= 9:  # half way through video 02
                token.cancel()
    out = tmp_path / "ds"
    assert _sequences(out) == ["01", "01_GT", SYNTHESIS_JSON]  # no partial 02, no temp folders
    assert not [p for p in out.iterdir() if p.name.startswith(".bvdm")]
    assert validate_ctc(out) == []
    assert sorted(json.loads((out / SYNTHESIS_JSON).read_text())["videos"]) == ["01"]


def test_existing_sequences_are_not_overwritten_silently(tmp_path, flow_file):
    run_job(_export(tmp_path / "ds", flow_file, n_videos=1))
    with pytest.raises(FileExistsError, match="overwrite"):
        run_job(_export(tmp_path / "ds", flow_file, n_videos=1))
    run_job(_export(tmp_path / "ds", flow_file, n_videos=1, overwrite=True))
    from napari_bvdm.io.video import InputError

    with pytest.raises(InputError, match="1..99"):
        run_job(_export(tmp_path / "ds", flow_file, n_videos=1, first_video=100))


@pytest.mark.slow
def test_cli_generate_from_labels_with_real_background(tmp_path, flow_file, gowt1, capsys):
    from napari_bvdm.cli import main

    labels, _ = _toy_labels(5)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    out = tmp_path / "cli"
    rc = main(["generate", "--labels", str(tmp_path / "labels.tif"), "--texture", "classical", "--flow",
               str(flow_file), "--real", str(gowt1 / "01"), "-o", str(out), "--videos", "2", "--seed", "4",
               "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert validate_ctc(out) == []
    rec = json.loads((out / SYNTHESIS_JSON).read_text())
    assert rec["run"]["scene"]["normalisation"]["dtype"] == "uint8"
    assert tifffile.imread(out / "01" / "t000.tif").dtype == np.uint8  # GOWT1's raw type
    assert "labels" in rec["run"]["models"]
    # a wrong flow file is a one-line user error
    rc = main(["generate", "--labels", str(tmp_path / "labels.tif"), "--texture", "classical", "--flow",
               str(tmp_path / "labels.tif"), "--real", str(gowt1 / "01"), "-o", str(tmp_path / "x"), "--quiet"])
    assert rc == 2 and "safetensors" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_generate_with_the_real_halo(tmp_path, flow_file, gowt1, capsys):
    """A real video with labels (--real) gives the frames the real cells' halo, recorded with the run;
    without labels there (or without --real) there is none."""
    from napari_bvdm.cli import main
    from napari_bvdm.texture.profile import halo_contrasts

    labels, _ = _toy_labels(5)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    out = tmp_path / "halo"
    rc = main(["generate", "--labels", str(tmp_path / "labels.tif"), "--texture", "classical", "--flow",
               str(flow_file), "--real", str(gowt1 / "01"), "-o", str(out), "--videos", "1", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert validate_ctc(out) == []
    run = json.loads((out / SYNTHESIS_JSON).read_text())["run"]
    halo = run["engine"]["halo"]
    assert len(halo) == 4 and halo[0] > halo[3]
    img = tifffile.imread(out / "01" / "t001.tif").astype(float)
    got = np.nanmean(halo_contrasts(img, tifffile.imread(out / "01_GT" / "TRA" / "man_track001.tif"), 4), axis=0)
    assert abs(got[0] - halo[0]) < 0.05  # uint8 rounding and the toy's close cells allow a little
    rc = main(["generate", "--labels", str(tmp_path / "labels.tif"), "--texture", "classical", "--flow",
               str(flow_file), "-o", str(tmp_path / "x"), "--quiet"])
    assert rc == 2 and "real video" in capsys.readouterr().err  # a label video needs a scene to paint on


@pytest.mark.slow
def test_cli_generate_records_the_painter_settings(tmp_path, flow_file, gowt1, capsys):
    """Settings from --config reach the diffusion painter, and the record keeps the painter's settings."""
    from napari_bvdm.cli import main
    from napari_bvdm.texture.crops import load_ctc_crops
    from napari_bvdm.texture.model import TextureModel, TextureModelConfig
    from napari_bvdm.texture.profile import RimProfile
    from napari_bvdm.texture.unet import UNetConfig

    crops = load_ctc_crops(gowt1 / "01")
    torch.manual_seed(0)
    tex = TextureModel(TextureModelConfig(unet=UNetConfig(width=4, depth=3, t_channels=16, mask_channel=True),
                                          crop_size=96), crops.normalisation, profile=RimProfile.from_crops(crops))
    tex_file = tex.save(tmp_path / "tex.safetensors")
    labels, _ = _toy_labels(5)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    (tmp_path / "cfg.json").write_text(json.dumps({"texture": {"passes": 2, "refresh_strength": 20}}))
    out = tmp_path / "dist"
    rc = main(["generate", "--labels", str(tmp_path / "labels.tif"), "--texture", str(tex_file), "--flow",
               str(flow_file), "--real", str(gowt1 / "01"), "-o", str(out), "--videos", "1",
               "--config", str(tmp_path / "cfg.json"), "--device", "cpu", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert validate_ctc(out) == []
    run = json.loads((out / SYNTHESIS_JSON).read_text())["run"]
    assert run["painter"] == "DiffusionPainter" and run["painter_config"]["ddim_steps"] == 2
    assert run["painter_config"]["rim_profile"] is True and run["engine"]["tf_non0"] == 20
    assert run["config"]["texture"]["passes"] == 2 and run["config"]["output"]["videos"] == 1
    rc = main(["generate", "--labels", str(tmp_path / "labels.tif"), "--texture", "classical", "--flow",
               str(flow_file), "--real", str(gowt1 / "01"), "-o", str(tmp_path / "cl"), "--videos", "1", "--quiet"])
    assert rc == 0
    assert "high_rel_std" in json.loads((tmp_path / "cl" / SYNTHESIS_JSON).read_text())["run"]["painter_config"]
    (tmp_path / "bad.json").write_text(json.dumps({"texture": {"passes": 2, "halo": True}}))
    rc = main(["generate", "-o", str(tmp_path / "y"), "--config", str(tmp_path / "bad.json"), "--quiet"])
    assert rc == 2 and "halo" in capsys.readouterr().err  # an unknown setting is named


def test_export_passes_py_ctcmetrics(tmp_path, flow_file):
    """Our GT presented as a result: valid for py-ctcmetrics, and scores 1 against itself."""
    import contextlib
    import io
    import shutil

    ctc_metrics = pytest.importorskip("ctc_metrics")
    out = run_job(_export(tmp_path / "ds", flow_file, n_videos=1))
    res = tmp_path / "01_RES"
    res.mkdir()
    for f in sorted((out / "01_GT" / "TRA").glob("man_track*.tif")):
        shutil.copy(f, res / f"mask{f.stem[len('man_track'):]}.tif")
    shutil.copy(out / "01_GT" / "TRA" / "man_track.txt", res / "res_track.txt")
    with contextlib.redirect_stdout(io.StringIO()):
        valid = ctc_metrics.validate_sequence(str(res), threads=1)
        scores = ctc_metrics.evaluate_sequence(str(res), str(out / "01_GT"), metrics=["SEG", "TRA"], threads=1)
    assert valid["Valid"] == 1
    assert scores["SEG"] == pytest.approx(1.0) and scores["TRA"] == pytest.approx(1.0)


def test_cli_generate_with_bundled_shape_and_flow_models(tmp_path, capsys):
    from napari_bvdm.cli import main
    from napari_bvdm.synthesis.recipe import DEFAULTS

    if not (DEFAULTS / "shape_model.json").is_file() or not (DEFAULTS / "flow.safetensors").is_file():
        pytest.skip("bundled models not present")
    out = tmp_path / "ds"
    for first in (1, 2):  # two "processes" filling one dataset by seed range
        rc = main(["generate", "--texture", "classical", "-o", str(out), "--frames", "5", "--size", "192", "256",
                   "--cells", "3", "--first-video", str(first), "--videos", "1", "--seed", "11", "--quiet"])
        assert rc == 0, capsys.readouterr().err
    assert validate_ctc(out) == []
    rec = json.loads((out / SYNTHESIS_JSON).read_text())
    assert sorted(rec["videos"]) == ["01", "02"] and rec["run"]["config"]["seed"] == 11
    assert rec["run"]["config"]["shapes"]["height"] == 192
    assert {"flow", "shapes"} <= set(rec["run"]["models"])
    img = tifffile.imread(out / "02" / "t004.tif")
    lab = tifffile.imread(out / "02_GT" / "TRA" / "man_track004.tif")
    assert img.shape == lab.shape == (192, 256) and lab.max() > 0
    assert img[lab > 0].mean() > img[lab == 0].mean() + 10  # cells visible on the background


def test_generate_config_of_a_record_reproduces_the_videos_exactly(tmp_path, capsys):
    """`bvdm generate --config DATASET/synthesis.json -o NEW` makes the recorded videos again, bit for bit;
    the record names its seed once."""
    from napari_bvdm.cli import main

    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps({"seed": 7, "shapes": {"frames": 3, "height": 128, "width": 128, "cells": 3},
                               "texture": {"passes": 2}, "output": {"videos": 2}}))
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["generate", "--config", str(cfg), "-o", str(first), "--device", "cpu", "--quiet"]) == 0
    text = (first / SYNTHESIS_JSON).read_text()
    assert text.count('"seed"') == 1
    assert main(["generate", "--config", str(first / SYNTHESIS_JSON), "-o", str(again), "--quiet"]) == 0, \
        capsys.readouterr().err
    files = sorted(p.relative_to(first) for p in first.rglob("*.tif"))
    assert len(files) == 2 * 3 * 3  # two videos, three frames, image + SEG + TRA
    for f in files:
        assert np.array_equal(tifffile.imread(first / f), tifffile.imread(again / f)), f
    # the same dataset takes more videos of the same settings, and refuses others
    assert main(["generate", "--config", str(cfg), "-o", str(first), "--first-video", "3", "--videos", "1",
                 "--device", "cpu", "--quiet"]) == 0
    rc = main(["generate", "--config", str(cfg), "-o", str(first), "--first-video", "4", "--videos", "1",
               "--seed", "8", "--quiet"])
    assert rc == 2 and "other settings" in capsys.readouterr().err


def test_old_and_damaged_records_give_clear_errors(tmp_path, flow_file):
    """A synthesis.json of the earlier format, or a damaged one, is refused and left untouched."""
    from napari_bvdm.io.video import InputError

    for text, match in (('{"format": "napari-bvdm synthesis record", "version": 1, "runs": [], "videos": {}}',
                         "another version"), ("{not json", "damaged")):
        out = tmp_path / match.replace(" ", "_")
        out.mkdir()
        (out / SYNTHESIS_JSON).write_text(text)
        with pytest.raises(InputError, match=match):
            run_job(_export(out, flow_file, n_videos=1))
        assert (out / SYNTHESIS_JSON).read_text() == text
        assert _sequences(out) == [SYNTHESIS_JSON]


def test_a_draft_is_continued_not_made_again(tmp_path, monkeypatch):
    """A preview's frames (a draft) are written as they are; only the frames it lacks are painted, and the
    dataset is byte-identical to one made without the draft."""
    from napari_bvdm.synthesis import pipeline, recipe
    from napari_bvdm.synthesis.config import GenerateConfig

    cfg = GenerateConfig.from_dict({"seed": 3, "shapes": {"frames": 4, "height": 64, "width": 64, "cells": 2},
                                    "texture": {"model": "classical"}, "output": {"videos": 2}})
    ing = recipe.prepare(cfg)
    run_job(recipe.generate(cfg, tmp_path / "plain", ing))
    painted = []
    frame = pipeline._frame
    monkeypatch.setattr(pipeline, "_frame", lambda v, t: painted.append(t) or frame(v, t))
    draft = run_job(recipe.start_video(cfg, ing))
    run_job(draft.run(2))  # a preview of 2 frames
    run_job(draft.run(1))  # a shorter look paints nothing
    assert painted == [0, 1] and len(draft.frames) == 2 and not draft.complete
    run_job(recipe.generate(cfg, tmp_path / "drafted", ing, drafts={1: draft}))
    assert painted == [0, 1, 2, 3, 0, 1, 2, 3]  # video 01: frames 2, 3 only; video 02: all four
    assert draft.complete
    files = sorted(p.relative_to(tmp_path / "plain") for p in (tmp_path / "plain").rglob("*.tif"))
    assert len(files) == 2 * 4 * 3  # raw, SEG and TRA frames of two videos
    for f in files:
        assert (tmp_path / "plain" / f).read_bytes() == (tmp_path / "drafted" / f).read_bytes(), f
    # a cancelled continuation drops the draft's frames: the next run starts the video afresh
    token = CancelToken()
    draft2 = run_job(recipe.start_video(cfg, ing))
    run_job(draft2.run(1))
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(draft2.run(3, cancel=token))
    assert draft2.frames == []
    np.testing.assert_array_equal(run_job(draft2.run(1)).frames[0].image, draft.frames[0].image)


def test_an_export_keeps_neither_masks_nor_frames(tmp_path, monkeypatch):
    """bvdm generate's memory does not grow with the video: simulated masks are made again when read and the
    frames are written as they are made, not kept."""
    from napari_bvdm.shapes.simulate import SimulatedLabels
    from napari_bvdm.synthesis import draft as draft_mod
    from napari_bvdm.synthesis import recipe
    from napari_bvdm.synthesis.config import GenerateConfig

    made = []
    init = draft_mod.VideoDraft.__init__
    monkeypatch.setattr(draft_mod.VideoDraft, "__init__",
                        lambda self, *a, **k: made.append(self) or init(self, *a, **k))
    cfg = GenerateConfig.from_dict({"seed": 1, "shapes": {"frames": 5, "height": 64, "width": 64, "cells": 2},
                                    "texture": {"model": "classical"}, "output": {"videos": 1}})
    run_job(recipe.generate(cfg, tmp_path / "out", recipe.prepare(cfg)))
    (d,) = made
    assert isinstance(d.labels, SimulatedLabels) and not d.keep and d.frames == [] and d.complete
    assert len(list((tmp_path / "out" / "01").glob("t*.tif"))) == 5
