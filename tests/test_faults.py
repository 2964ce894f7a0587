"""Faults during `bvdm generate` and export: full disk, held lock, parallel writers, impossible cell counts,
invalid simulated lineages, SIGTERM/SIGKILL, folder permissions, kills at random moments, demo replacement.

Every test is named after its case in docs/troubleshooting.md ("Faults during generate and export").
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_bvdm.cli import main
from napari_bvdm.io.validator import check_lineage, validate_ctc
from napari_bvdm.synthesis import export
from napari_bvdm.synthesis.export import SYNTHESIS_JSON
from napari_bvdm.synthesis.recipe import DEFAULTS

LOCK = SYNTHESIS_JSON + ".lock"
TINY = {"seed": 3, "shapes": {"frames": 3, "height": 64, "width": 64, "cells": 2},
        "texture": {"model": "classical"}, "output": {"videos": 1}}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def _bundled_models():
    if not (DEFAULTS / "shape_model.json").is_file() or not (DEFAULTS / "flow.safetensors").is_file():
        pytest.skip("bundled models not present")


def _config(tmp_path: Path, name: str = "tiny.json", **shapes) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["shapes"].update(shapes)
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


def _generate(cfg: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", "--config", str(cfg), "-o", str(out), "--quiet", *extra]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "napari_bvdm.cli", *args]


def _hidden(*folders: Path) -> list[str]:
    return sorted(p.name for f in folders if f.is_dir() for p in f.iterdir() if p.name.startswith("."))


def _videos(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir() and p.name.isdigit())


def _recorded(out: Path) -> list[str]:
    return sorted(json.loads((out / SYNTHESIS_JSON).read_text())["videos"])


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _assert_consistent(out: Path) -> None:
    """Valid CTC, and the record lists exactly the sequences present (each with its GT)."""
    assert validate_ctc(out) == []
    seqs = _videos(out)
    assert seqs == _recorded(out)
    assert all((out / f"{s}_GT").is_dir() for s in seqs)


def _holder(path: Path) -> subprocess.Popen:
    """Another process that holds ``path`` locked (flock) until it is killed."""
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- 1. held lock / full disk while recording -----------------------------------------------------------
def _no_space(obj, fp, *args, **kwargs):
    fp.write("{")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_case1_full_disk_while_recording_publishes_nothing(tmp_path, monkeypatch, capsys):
    cfg = _config(tmp_path)
    out = tmp_path / "ds"
    assert main(_generate(cfg, out)) == 0
    before = (out / SYNTHESIS_JSON).read_text()
    capsys.readouterr()
    monkeypatch.setattr(json, "dump", _no_space)
    assert main(_generate(cfg, out, "--first-video", "2")) == 1
    line = _one_line(capsys.readouterr().err)
    assert "video 02 was not published" in line and "No space left on device" in line
    assert _videos(out) == ["01"] and (out / SYNTHESIS_JSON).read_text() == before
    _assert_consistent(out)
    assert _hidden(out, tmp_path) == [] and not (out / LOCK).exists()  # no .synthesis-*, .bvdm-export-*
    # the first video of a new dataset: no folder at all
    new = tmp_path / "new"
    assert main(_generate(cfg, new)) == 1
    assert "video 01 was not published" in _one_line(capsys.readouterr().err)
    assert not new.exists() and _hidden(tmp_path) == []
    monkeypatch.undo()
    assert main(_generate(cfg, out, "--first-video", "2")) == 0  # free space: the same command adds it
    _assert_consistent(out)
    assert _videos(out) == ["01", "02"]


def test_case1_lock_held_by_another_process_publishes_nothing(tmp_path, monkeypatch, capsys):
    cfg = _config(tmp_path)
    out = tmp_path / "ds"
    assert main(_generate(cfg, out)) == 0
    capsys.readouterr()
    monkeypatch.setattr(export, "LOCK_TIMEOUT_S", 1.0, raising=False)
    holder = _holder(out / LOCK)
    try:
        assert main(_generate(cfg, out, "--first-video", "2")) == 1
        line = _one_line(capsys.readouterr().err)
        assert "stayed locked by another process" in line and "video 02 was not published" in line
        assert _videos(out) == ["01"]
        _assert_consistent(out)
        assert _hidden(out, tmp_path) == []
    finally:
        holder.kill()
        holder.wait()
    # the holder's death released the lock (its file is still there): the same command now adds the video
    assert (out / LOCK).exists()
    assert main(_generate(cfg, out, "--first-video", "2")) == 0
    assert _videos(out) == ["01", "02"] and not (out / LOCK).exists()
    _assert_consistent(out)


@pytest.mark.parametrize("writes_before_full", [0, 4, 8])
def test_case1_full_disk_while_writing_frames_publishes_nothing(tmp_path, monkeypatch, capsys, writes_before_full):
    from napari_bvdm.io import ctc_writer

    cfg = _config(tmp_path)
    out = tmp_path / "ds"
    assert main(_generate(cfg, out)) == 0
    before = (out / SYNTHESIS_JSON).read_text()
    capsys.readouterr()
    imwrite, calls = tifffile.imwrite, []

    def fills_up(*args, **kwargs):
        calls.append(1)
        if len(calls) > writes_before_full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return imwrite(*args, **kwargs)

    monkeypatch.setattr(ctc_writer.tifffile, "imwrite", fills_up)
    assert main(_generate(cfg, out, "--first-video", "2")) == 1
    assert "No space left on device" in _one_line(capsys.readouterr().err)
    assert _videos(out) == ["01"] and (out / SYNTHESIS_JSON).read_text() == before
    _assert_consistent(out)
    assert _hidden(out, tmp_path) == []
    monkeypatch.undo()
    assert main(_generate(cfg, out, "--first-video", "2")) == 0
    assert _videos(out) == ["01", "02"]
    _assert_consistent(out)


# --- 2. parallel processes filling one new folder --------------------------------------------------------
@pytest.mark.parametrize("n", [2, 4])
def test_case2_processes_fill_one_new_folder(tmp_path, n):
    cfg = _config(tmp_path)
    out = tmp_path / "ds"
    procs = [subprocess.Popen(_cli(*_generate(cfg, out, "--first-video", str(k + 1))), env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(n)]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (_o, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    assert validate_ctc(out) == []
    assert _videos(out) == _recorded(out) == [f"{k + 1:02d}" for k in range(n)]
    assert _hidden(out, tmp_path) == [] and not (out / LOCK).exists()


# --- 3. more cells than the frame holds --------------------------------------------------------------------
def test_case3_too_many_cells_is_refused_before_simulating(tmp_path, monkeypatch, capsys):
    from napari_bvdm.shapes import ShapeModel
    from napari_bvdm.shapes import simulate as sim
    from napari_bvdm.shapes.simulate import max_cells

    most = max_cells(ShapeModel.default(), 64, 64)
    assert 2 <= most < 50
    cfg = _config(tmp_path)

    def never(self, cancel):
        raise AssertionError("simulation started")

    with monkeypatch.context() as m:
        m.setattr(sim._Simulator, "run_frames", never)
        t0 = time.monotonic()
        assert main(_generate(cfg, tmp_path / "ds", "--cells", "10000")) == 2
        assert time.monotonic() - t0 < 30
    line = _one_line(capsys.readouterr().err)
    assert "10000 cells do not fit on a 64 x 64 frame" in line and f"at most {most} fit" in line
    assert not (tmp_path / "ds").exists()
    with pytest.raises(sim.ConfigError, match=f"at most {most} fit"):
        next(sim.simulate_masks(ShapeModel.default(), sim.SimulationConfig(height=64, width=64, cells=10000)))
    assert main(_generate(cfg, tmp_path / "ds", "--cells", str(most))) == 0  # the most that fit is fine


# --- 4. simulated lineage declaring a track twice ---------------------------------------------------------
def test_case4_model_fitted_with_one_division_simulates_valid_lineages():
    """A mother whose division is postponed (contact inhibition) was listed as ended and then again."""
    from napari_bvdm.io.lineage import frame_label_sets
    from napari_bvdm.io.toy import toy_sequence
    from napari_bvdm.io.video import Video
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.shapes import SimulationConfig, simulate_masks
    from napari_bvdm.shapes.fit import FitConfig, fit_shape_model

    image, labels, lineage = toy_sequence()  # a valid CTC set with one division
    model = run_job(fit_shape_model(Video(image=image, labels={"TRA": labels}, lineage=lineage),
                                    FitConfig(calibration_frames=0)))
    assert model.params["division"]["enabled"] and model.params["division"]["count"] == 1
    divided = 0
    for seed in range(20):
        cfg = SimulationConfig(frames=12, height=128, width=128, seed=seed)
        video = run_job(simulate_masks(model, cfg))
        assert check_lineage(video.lineage, frame_label_sets(video.labels), cfg.frames) == [], seed
        divided += int((video.lineage[:, 3] > 0).any())
    assert divided >= 5


def test_case4_invalid_masks_are_refused_before_painting(tmp_path):
    from napari_bvdm.io.ctc_writer import ExportError
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.synthesis import SceneStats, SynthesisConfig
    from napari_bvdm.synthesis.export import MaskSet, export_dataset
    from napari_bvdm.texture.painter import ClassicalPainter

    scene = SceneStats(level=0.05, noise=0.02, noise_corr=0.3, cell_brightness=(0.4, 0.05),
                       normalisation={"offset": 10.0, "scale": 200.0, "dtype": "uint16"})

    class Counting(ClassicalPainter):
        calls = 0

        def paint(self, *args, **kwargs):
            Counting.calls += 1
            return super().paint(*args, **kwargs)

    labels = np.zeros((4, 48, 48), np.uint16)
    labels[:, 5:15, 5:15] = 1
    labels[:, 25:35, 25:35] = 2
    twice = np.array([[1, 0, 1, 0], [1, 2, 3, 0], [2, 0, 3, 0]])  # track 1 declared twice
    job = export_dataset(tmp_path / "ds", MaskSet(labels, twice), Counting(normalisation=scene.norm, crop_size=32),
                         None, scene, SynthesisConfig(temporal="independent"))
    with pytest.raises(ExportError, match=r"nothing was painted: \[rule 1\] track 1 is declared more than once"):
        run_job(job)
    assert Counting.calls == 0
    assert not (tmp_path / "ds").exists() and _hidden(tmp_path) == []


# --- 5. SIGTERM and SIGKILL during generate ----------------------------------------------------------------
def _start_and_wait_for_export(cfg: Path, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(_cli(*_generate(cfg, out, "--videos", "2")), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(f".{out.name}.bvdm-export-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    time.sleep(0.2)  # inside the first frames
    assert proc.poll() is None
    return proc


def test_case5_sigterm_cleans_up_like_ctrl_c(tmp_path):
    cfg = _config(tmp_path, frames=40, height=128, width=128, cells=4)
    out = tmp_path / "ds"
    proc = _start_and_wait_for_export(cfg, out)
    proc.send_signal(signal.SIGTERM)
    _o, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("bvdm: terminated")
    assert _hidden(tmp_path, out) == []
    assert not out.exists() or (_assert_consistent(out) is None)


def test_case5_sigkill_leftovers_are_removed_by_the_next_run_but_a_live_runs_are_kept(tmp_path):
    from napari_bvdm.runtime.locks import owner_tag

    host = owner_tag().split("-")[0]
    cfg = _config(tmp_path, frames=40, height=128, width=128, cells=4)
    out = tmp_path / "ds"
    proc = _start_and_wait_for_export(cfg, out)
    proc.kill()
    proc.wait()
    killed = _hidden(tmp_path)
    assert killed and all(".bvdm-export-01-" in name for name in killed)
    live = _sleeper()
    try:
        beside_live = tmp_path / f".ds.bvdm-export-02-{host}-{live.pid}-abcd"
        beside_live.mkdir()
        tiny = _config(tmp_path)
        assert main(_generate(tiny, out)) == 0
        assert _hidden(tmp_path) == [beside_live.name]  # the killed run's folder is gone, the live one stays
        dead_inside = out / f".bvdm-export-02-{host}-{_dead_pid()}-wxyz"
        live_inside = out / f".bvdm-export-03-{host}-{live.pid}-wxyz"
        for folder in (dead_inside, live_inside):
            (folder / "02_GT" / "TRA").mkdir(parents=True)
        assert main(_generate(tiny, out, "--first-video", "2")) == 0
        assert _hidden(out) == [live_inside.name]
        _assert_consistent(out)
    finally:
        live.kill()
        live.wait()


# --- 6. permissions of new dataset folders ------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_case6_new_dataset_folder_follows_the_umask(tmp_path, umask):
    cfg = _config(tmp_path)
    old = os.umask(umask)
    try:
        assert main(_generate(cfg, tmp_path / "ds")) == 0
    finally:
        os.umask(old)
    out = tmp_path / "ds"
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (out / "01").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (out / SYNTHESIS_JSON).stat().st_mode & 0o777 == 0o666 & ~umask


# --- 7. SIGKILL at random moments --------------------------------------------------------------------------
_ZYGOTE = r"""
import json, os, sys
import torch
torch.set_num_threads(1)
from napari_bvdm.cli import main
import napari_bvdm.commands.generate, napari_bvdm.synthesis.recipe, napari_bvdm.texture.painter, napari_bvdm.flow
devnull = os.open(os.devnull, os.O_WRONLY)
print("ready", flush=True)
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        rc = 1
        try:
            rc = main(json.loads(line))
        finally:
            os._exit(rc)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


class _Zygote:
    """A process that imported napari-bvdm once and forks one `bvdm` run per request (fast to start)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _ZYGOTE], env=ENV, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def start(self, argv: list[str]) -> int:
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def status(self) -> int:
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _pixels(out: Path, seq: str) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out)): tifffile.imread(p) for p in sorted(out.glob(f"{seq}*/**/*.tif"))}


def _check_after_kill(out: Path, ref: Path, before: list[str]) -> list[str]:
    """The previous state or a later one: consistent, nothing lost, every video identical to the reference."""
    if not out.exists():
        assert before == []
        return []
    lock = out / LOCK
    if lock.exists() and lock.read_text().strip():  # killed between moving a video in and its record
        export.tidy_dataset(out)  # what the next run does first
    _assert_consistent(out)
    now = _videos(out)
    assert set(before) <= set(now)
    for seq in set(now) - set(before):
        a, b = _pixels(out, seq), _pixels(ref, seq)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), seq
    return now


@pytest.mark.slow
def test_case7_sigkill_at_random_moments_leaves_a_valid_dataset_and_the_same_command_resumes(tmp_path):
    cfg = _config(tmp_path)
    zygote = _Zygote()
    try:
        ref = tmp_path / "ref"
        t0 = time.monotonic()
        zygote.start(_generate(cfg, ref, "--videos", "3"))
        assert zygote.status() == 0
        duration = time.monotonic() - t0
        rng = random.Random(20240607)
        round_, before, kills = 0, [], 0
        out = tmp_path / "ds0"
        for _ in range(20):
            pid = zygote.start(_generate(cfg, out, "--videos", "3"))
            time.sleep(rng.uniform(0, duration))  # a resumed run has less to do: some end before
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = zygote.status()
            kills += int(os.WIFSIGNALED(status))
            before = _check_after_kill(out, ref, before)
            if os.WIFEXITED(status):
                assert os.WEXITSTATUS(status) == 0
            if before == ["01", "02", "03"]:  # complete: the next kills go to a new dataset
                round_ += 1
                out, before = tmp_path / f"ds{round_}", []
        assert kills >= 5
        zygote.start(_generate(cfg, out, "--videos", "3"))  # the same command once more completes the run
        assert zygote.status() == 0
    finally:
        zygote.close()
    for k in range(round_ + 1):
        done = tmp_path / f"ds{k}"
        _assert_consistent(done)
        assert _videos(done) == ["01", "02", "03"]
        assert _hidden(done) == [] and not (done / LOCK).exists()
        for seq in ("01", "02", "03"):
            a, b = _pixels(done, seq), _pixels(ref, seq)
            assert all(np.array_equal(a[key], b[key]) for key in a)
    assert _hidden(tmp_path) == []


# --- 8. demo --overwrite -------------------------------------------------------------------------------------
def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_case8_demo_overwrite_replaces_only_its_own_dataset_after_checking_every_option(tmp_path, monkeypatch,
                                                                                     capsys):
    cfg = _config(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["demo", "--out", str(mine), "--config", str(cfg), "--overwrite", "--quiet"]) == 2
    assert "not a dataset written by napari-bvdm" in _one_line(capsys.readouterr().err)
    assert _files(mine) == {"notes.txt": b"keep me"}

    demo = tmp_path / "demo"
    assert main(["demo", "--out", str(demo), "--config", str(cfg), "--quiet"]) == 0
    old = _files(demo)
    capsys.readouterr()
    bad_value = tmp_path / "bad.json"
    bad_value.write_text(json.dumps({**TINY, "shapes": {**TINY["shapes"], "frames": 0}}))
    crowded = _config(tmp_path, "crowded.json", cells=10000)
    for argv in (["--config", str(bad_value)], ["--config", str(crowded)], ["--config", str(cfg), "--seed", "x"]):
        try:
            rc = main(["demo", "--out", str(demo), "--overwrite", "--quiet", *argv])
        except SystemExit as e:  # argparse refuses the option itself
            rc = e.code
        assert rc == 2, argv
        assert _files(demo) == old and _hidden(tmp_path) == []
    capsys.readouterr()
    from napari_bvdm import preview

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(preview, "write_preview", full_disk)  # fails after the new dataset was generated
    assert main(["demo", "--out", str(demo), "--config", str(cfg), "--overwrite", "--seed", "5", "--quiet"]) == 1
    assert "No space left on device" in _one_line(capsys.readouterr().err)
    assert _files(demo) == old and _hidden(tmp_path) == []
    monkeypatch.undo()
    assert main(["demo", "--out", str(demo), "--config", str(cfg), "--overwrite", "--seed", "5", "--quiet"]) == 0
    assert _files(demo) != old and validate_ctc(demo) == [] and _hidden(tmp_path) == []


# --- 9. a full disk in the middle of a run of several videos -------------------------------------------------
def test_case9_full_disk_in_a_multi_video_run_says_what_is_complete(tmp_path, monkeypatch, capsys):
    from napari_bvdm.io import ctc_writer

    cfg = _config(tmp_path)
    out = tmp_path / "ds"
    imwrite, calls = tifffile.imwrite, []

    def fills_up(*args, **kwargs):  # room for two videos of 3 frames x 3 files
        calls.append(1)
        if len(calls) > 18:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return imwrite(*args, **kwargs)

    monkeypatch.setattr(ctc_writer.tifffile, "imwrite", fills_up)
    assert main(_generate(cfg, out, "--videos", "4")) == 1
    line = _one_line(capsys.readouterr().err)
    assert "No space left on device" in line and "video 03 was not written; videos 01, 02 are complete" in line
    _assert_consistent(out)
    assert _videos(out) == ["01", "02"]
    monkeypatch.undo()
    assert main(_generate(cfg, out, "--videos", "4")) == 0  # the same command makes the rest
    assert _videos(out) == ["01", "02", "03", "04"]


# --- 10. output paths and records that are not what they seem ---------------------------------------------
def test_case10_outputs_under_a_file_and_records_that_are_not_text(tmp_path, capsys):
    cfg = _config(tmp_path)
    efile = tmp_path / "efile"
    efile.write_text("mine")
    assert main(_generate(cfg, efile / "sub")) == 2
    assert "efile is a file, not a folder, so" in _one_line(capsys.readouterr().err)
    assert main(_generate(cfg, tmp_path / "ds", "--first-video", "100")) == 2
    assert "first_video = 100: must be at most 99" in _one_line(capsys.readouterr().err)
    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / SYNTHESIS_JSON).write_bytes(b"\xff\xfe\x00")
    assert main(_generate(cfg, binary)) == 2
    assert f"{SYNTHESIS_JSON} is damaged" in _one_line(capsys.readouterr().err)
    assert (binary / SYNTHESIS_JSON).read_bytes() == b"\xff\xfe\x00" and efile.read_text() == "mine"


@pytest.mark.slow
def test_case10_fit_shapes_overwrite_never_replaces_a_synthesis_record(tmp_path, capsys, simplus):
    cfg = _config(tmp_path)
    out = tmp_path / "ds"
    assert main(_generate(cfg, out)) == 0
    before = (out / SYNTHESIS_JSON).read_bytes()
    capsys.readouterr()
    rc = main(["fit-shapes", str(simplus / "01"), "-o", str(out / SYNTHESIS_JSON), "--overwrite", "--quiet"])
    assert rc == 2
    line = _one_line(capsys.readouterr().err)
    assert "is a synthesis record" in line and "--overwrite replaces only a shape model file" in line
    assert (out / SYNTHESIS_JSON).read_bytes() == before
    # an older shape model is replaced with --overwrite
    from napari_bvdm.shapes import ShapeModel

    model = tmp_path / "shapes.json"
    ShapeModel.default().save(model)
    old = model.read_bytes()
    assert main(["fit-shapes", str(simplus / "01"), "-o", str(model), "--overwrite", "--variance-share", "0.95",
                 "--quiet"]) == 0
    assert model.read_bytes() != old and ShapeModel.load(model).source
