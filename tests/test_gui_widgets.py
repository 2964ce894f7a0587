"""GUI tests of the single widgets: construction through napari's viewer proxy, shared state,
settings that persist between sessions, run-settings files the CLI reads, job runner behaviour."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.gui

WIDGETS = ("WorkflowWidget", "DataWidget", "ShapeModelWidget", "TextureModelWidget", "FlowModelWidget",
           "GenerateWidget", "ExportWidget")


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_BVDM_CONFIG_DIR", str(tmp_path / "config"))


def test_every_widget_builds_from_the_viewer_proxy(make_napari_viewer_proxy, qtbot, recwarn):
    import napari_bvdm.widgets as widgets
    from napari_bvdm.widgets._state import get_state

    viewer = make_napari_viewer_proxy()
    built = {}
    for name in WIDGETS:
        w = getattr(widgets, name)(napari_viewer=viewer)
        qtbot.addWidget(w)
        built[name] = w
    private = [w for w in recwarn if "Private attribute access" in str(w.message)]
    assert not private, private[0].message
    # one shared state per viewer, whatever object napari hands over
    assert get_state(viewer) is get_state(viewer.__wrapped__) is built["DataWidget"].state
    # nothing loaded yet: every step says what is missing
    for key, step in built["WorkflowWidget"].steps.items():
        assert step.status_text.startswith(("missing", "unavailable", "image only")), (key, step.status_text)
    # a model set anywhere is ready everywhere (stand-alone widget and workflow section)
    from napari_bvdm.flow import FlowConfig, FlowModel

    built["FlowModelWidget"].state.flow_model = FlowModel(FlowConfig(encoder=(4,), decoder=(4,), crop_size=16))
    assert built["WorkflowWidget"].step_ready("flow")
    assert "✔" in built["WorkflowWidget"].header("flow")


def test_settings_persist_between_sessions(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_bvdm.widgets import ExportWidget, TextureModelWidget
    from napari_bvdm.widgets._settings import gui_settings

    v1 = make_napari_viewer_proxy()
    w = TextureModelWidget(v1)
    qtbot.addWidget(w)
    w.train_form.set_values({"steps": 123, "lr": 0.0005})
    w.set_path(tmp_path / "mine.safetensors")
    e = ExportWidget(v1)
    qtbot.addWidget(e)
    e.set_folder(tmp_path / "out")
    e.n_videos.setValue(7)
    assert json.loads(gui_settings().path.read_text())["train-texture"]["steps"] == 123
    # a new napari session: settings are read back from the file
    from napari_bvdm.widgets import _settings

    _settings._SETTINGS.clear()
    v2 = make_napari_viewer_proxy()
    w2 = TextureModelWidget(v2)
    qtbot.addWidget(w2)
    assert w2.train_form.values()["steps"] == 123 and w2.train_form.values()["lr"] == pytest.approx(0.0005)
    assert w2.path == str(tmp_path / "mine.safetensors")
    e2 = ExportWidget(v2)
    qtbot.addWidget(e2)
    assert e2.folder.text() == str(tmp_path / "out") and e2.n_videos.value() == 7


def test_run_settings_file_round_trip_and_cli_sections(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_bvdm.flow.train import FlowTrainConfig
    from napari_bvdm.synthesis.config import GenerateConfig
    from napari_bvdm.texture.model import TextureModelConfig
    from napari_bvdm.texture.train import TrainConfig
    from napari_bvdm.widgets import WorkflowWidget

    wf = WorkflowWidget(make_napari_viewer_proxy())
    qtbot.addWidget(wf)
    s = wf.steps
    s["texture"].train_form.set_values({"steps": 77, "batch_size": 8})
    s["texture"].unet_form.set_values({"width": 8})
    s["flow"].train_form.set_values({"steps": 55})
    s["generate"].form.set_values({"frames": 9, "refresh_strength": 4, "seed": 5})
    path = wf.save_settings(str(tmp_path / "run.json"))
    data = json.loads(open(path).read())
    # the sections are exactly what the subcommands read with --settings (strict configs: no unknown keys)
    assert TrainConfig.from_dict(data["texture"]["train"]).steps == 77
    assert TextureModelConfig.from_dict(data["texture"]["model"]).unet.width == 8
    assert FlowTrainConfig.from_dict(data["train_flow"]).steps == 55
    cfg = GenerateConfig.from_dict(data["config"])  # `bvdm generate --config`
    assert (cfg.texture.refresh_strength, cfg.shapes.frames, cfg.seed) == (4, 9, 5)
    from napari_bvdm.shapes import FitConfig, SimulationConfig

    FitConfig.from_dict(data["fit_shapes"])  # `bvdm fit-shapes --settings`
    SimulationConfig.from_dict(data["simulate_masks"])  # `bvdm simulate-masks --settings`
    # a second workflow (another session) loads the file back
    wf2 = WorkflowWidget(make_napari_viewer_proxy())
    qtbot.addWidget(wf2)
    wf2.load_settings(path)
    assert wf2.steps["texture"].train_form.values()["steps"] == 77
    assert wf2.steps["texture"].unet_form.values()["width"] == 8
    assert wf2.steps["flow"].train_form.values()["steps"] == 55
    assert wf2.steps["generate"].form.values()["frames"] == 9
    # a broken file gives a clear error naming the file
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    from napari_bvdm.runtime.config import ConfigError

    with pytest.raises(ConfigError, match="bad.json"):
        wf2.load_settings(str(bad))


def test_bad_form_value_is_refused_with_the_field_name(make_napari_viewer_proxy, qtbot):
    from napari_bvdm.runtime.config import ConfigError
    from napari_bvdm.widgets import TextureModelWidget

    w = TextureModelWidget(make_napari_viewer_proxy())
    qtbot.addWidget(w)
    w.model_form.set_values({"crop_size": 50})  # not a multiple of 2**depth
    with pytest.raises(ConfigError, match="crop_size"):
        w._configs()


def test_job_runner_reports_errors_and_cancels(qtbot):
    from napari_bvdm.io.video import InputError
    from napari_bvdm.runtime.progress import Progress
    from napari_bvdm.widgets._jobs import JobRunner

    runner = JobRunner(loss_plot=True)
    qtbot.addWidget(runner)
    closed = []

    def failing(token):
        yield Progress(1, 3, "working")
        raise InputError("labels are missing: segment first")

    runner.start(failing, title="Test job")
    qtbot.waitUntil(lambda: not runner.running, timeout=10_000)
    assert runner.last_outcome.status == "error"
    assert "failed: labels are missing" in runner.status.text() and "InputError" not in runner.status.text()

    def endless(token):  # ignores its token: the runner closes it at the next yield
        try:
            i = 0
            while True:
                i += 1
                yield Progress(i, None, "spinning", {"loss": 1.0 / i})
        finally:
            closed.append(True)

    results = []
    runner.start(endless, results.append, title="Spinner")
    qtbot.waitUntil(lambda: bool(runner.loss_plot.series["loss"]), timeout=10_000)
    runner.cancel()
    qtbot.waitUntil(lambda: not runner.running, timeout=10_000)
    assert runner.last_outcome.status == "cancelled" and closed == [True] and results == []


def test_classical_segmentation_finds_the_nuclei(gowt1):
    """The Data step's threshold + watershed on a real frame: about the GT number of nuclei."""
    import tifffile

    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.widgets._layers import classical_segmentation

    frame = tifffile.imread(sorted((gowt1 / "01").glob("t*.tif"))[0])[None]
    gt = tifffile.imread(sorted((gowt1 / "01_GT" / "TRA").glob("man_track*.tif"))[0])
    seg = run_job(classical_segmentation(frame, sigma=2.0, min_size=200, min_distance=20))
    n, n_gt = len(np.unique(seg)) - 1, len(np.unique(gt)) - 1
    assert abs(n - n_gt) <= 0.3 * n_gt, (n, n_gt)
    # most GT markers fall inside a segmented object
    hit = np.mean([seg[0][gt == i].max() > 0 for i in np.unique(gt)[1:]])
    assert hit > 0.8


# ----------------------------------------------------------------------------- child-process jobs
def _child_fails(cancel=None):
    from napari_bvdm.io.video import InputError
    from napari_bvdm.runtime.progress import Progress

    yield Progress(1, 2, "about to fail")
    raise InputError("too few cells: 3 crops, at least 32 needed")


def _child_ignores_cancel(cancel=None):
    import time

    from napari_bvdm.runtime.progress import Progress

    i = 0
    while True:  # never looks at its token
        i += 1
        time.sleep(0.05)
        yield Progress(i, None, "busy")


def _child_counts(n, cancel=None):
    from napari_bvdm.runtime.progress import Progress

    for i in range(n):
        if cancel is not None:
            cancel.check()
        yield Progress(i + 1, n, "counting")
    return f"counted {n}"


def test_child_process_job_result_error_and_hard_cancel():
    import time

    from napari_bvdm.io.video import InputError
    from napari_bvdm.runtime.progress import Cancelled, CancelToken, run_job
    from napari_bvdm.widgets._child import child_job

    events = []
    assert run_job(child_job(f"{__name__}:_child_counts", {"n": 3}), events.append) == "counted 3"
    assert [e.step for e in events] == [1, 2, 3]
    # the child's exception arrives with its own type and message
    with pytest.raises(InputError, match="too few cells"):
        run_job(child_job(f"{__name__}:_child_fails", {}))
    # a child that ignores Cancel is terminated after the grace period
    token = CancelToken()
    job = child_job(f"{__name__}:_child_ignores_cancel", {}, token, grace_s=1.0)
    next(job)
    token.cancel()
    t0 = time.monotonic()
    with pytest.raises(Cancelled, match="terminated"):
        run_job(job)
    assert time.monotonic() - t0 < 10


def test_child_process_does_not_run_a_script_without_a_main_guard(tmp_path):
    """A user's script that trains at its top level (no ``if __name__ == "__main__":``) runs once."""
    import subprocess
    import sys
    from pathlib import Path

    marks = tmp_path / "runs.txt"
    script = tmp_path / "my_script.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"open({str(marks)!r}, 'a').write('ran\\n')\n"
        "from napari_bvdm.runtime.progress import run_job\n"
        "from napari_bvdm.widgets._child import child_job\n"
        "print(run_job(child_job('test_gui_widgets:_child_counts', {'n': 2})))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "counted 2"
    assert marks.read_text() == "ran\n"  # the child did not run the script again
