"""GUI tests of the model steps' files: the bundled flow and texture defaults load, and saving a model
or training into an existing file never replaces it without the user's yes."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_BVDM_CONFIG_DIR", str(tmp_path / "config"))


def _answer(monkeypatch, yes: bool) -> list[str]:
    """Answer every "Replace file?" dialog with ``yes``; the questions asked are collected."""
    from qtpy.QtWidgets import QMessageBox

    asked: list[str] = []

    def question(parent, title, text, *a, **k):
        asked.append(text)
        return QMessageBox.StandardButton.Yes if yes else QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


@pytest.mark.parametrize("name", ["FlowModelWidget", "TextureModelWidget"])
def test_use_default_model_loads_the_bundled_weights(make_napari_viewer_proxy, qtbot, name):
    import napari_bvdm.widgets as widgets

    w = getattr(widgets, name)(make_napari_viewer_proxy())
    qtbot.addWidget(w)
    w.use_default()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=30000)
    model = getattr(w.state, w.model_attr)
    assert model is not None, w.runner.status_text if hasattr(w.runner, "status_text") else w.status_text
    assert w.status_text.startswith("ready"), w.status_text
    assert w.model_info.text()


def test_save_weights_asks_before_replacing_a_file(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch):
    from napari_bvdm.flow import FlowModel
    from napari_bvdm.widgets import FlowModelWidget

    w = FlowModelWidget(make_napari_viewer_proxy())
    qtbot.addWidget(w)
    w.state.flow_model = FlowModel.default()
    w.state.flow_path = "bundled default"
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(b"my own trained weights")
    w.set_path(mine)

    asked = _answer(monkeypatch, yes=False)
    w.save()
    assert asked and "mine.safetensors already exists" in asked[0]
    assert not w.runner.running
    assert mine.read_bytes() == b"my own trained weights"
    assert w.status_text.startswith("not saved") and "--" not in w.status_text

    asked = _answer(monkeypatch, yes=True)
    w.save()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=30000)
    assert asked and mine.read_bytes() != b"my own trained weights"
    assert FlowModel.load(mine).config == FlowModel.default().config
    assert w.state.flow_path == str(mine)

    # a new file is written without a question
    asked = _answer(monkeypatch, yes=False)
    new = tmp_path / "new.safetensors"
    w.set_path(new)
    w.save()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=30000)
    assert not asked and new.is_file()


def test_train_asks_before_replacing_the_weights_file(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch,
                                                      gowt1):
    from napari_bvdm.io.readers import read_ctc
    from napari_bvdm.widgets import TextureModelWidget

    w = TextureModelWidget(make_napari_viewer_proxy())
    qtbot.addWidget(w)
    w.state.video = read_ctc(gowt1 / "01").frames(0, 3)
    mine = tmp_path / "texture.safetensors"
    mine.write_bytes(b"weeks of training")
    w.set_path(mine)
    asked = _answer(monkeypatch, yes=False)
    w.train()
    assert asked and not w.runner.running
    assert mine.read_bytes() == b"weeks of training"


def test_saving_a_shape_model_over_a_file_asks(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch):
    from napari_bvdm.shapes import ShapeModel
    from napari_bvdm.widgets import ShapeModelWidget

    w = ShapeModelWidget(make_napari_viewer_proxy())
    qtbot.addWidget(w)
    w.state.shape_model = ShapeModel.default()
    target = tmp_path / "shapes.json"
    target.write_text("{}")
    asked = _answer(monkeypatch, yes=False)
    w.save(str(target))
    assert asked and target.read_text() == "{}"


@pytest.mark.parametrize("name", ["TextureModelWidget", "FlowModelWidget"])
def test_fine_tune_trains_the_bundled_model_for_the_chosen_time(make_napari_viewer_proxy, qtbot, tmp_path,
                                                                 monkeypatch, gowt1, name):
    import napari_bvdm.widgets as widgets
    from napari_bvdm.io.readers import read_ctc

    w = getattr(widgets, name)(make_napari_viewer_proxy())
    qtbot.addWidget(w)
    w.state.video = read_ctc(gowt1 / "01").frames(0, 4)
    assert w.finetune_btn.isEnabled() and w.finetune_btn.text() == f"Fine-tune {w.finetune_minutes} min"
    plan = w.plan_label.text()
    assert "Measured:" in plan and "Train from scratch (Advanced):" in plan
    assert re.search(r"steps, about \d+ h( \d+ min)? on a 2-core CPU", plan), plan
    w.minutes.setValue(3)
    assert w.finetune_btn.text() == "Fine-tune 3 min" and "Measured:" not in w.plan_label.text()
    w.child_box.setChecked(False)
    target = tmp_path / "tuned.safetensors"
    w.set_path(target)
    monkeypatch.setattr(type(w), "finetune_seconds", lambda self: 3.0)
    w.fine_tune()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120_000)
    assert w.runner.last_outcome.status == "done", w.runner.last_outcome
    model = getattr(w.state, w.model_attr)
    assert target.is_file() and getattr(w.state, w.path_attr) == str(target)
    info = getattr(model, "info", None) or getattr(model, "extra", {})
    init = info.get("init") or (info.get("train_config") or {}).get("init")
    assert init == "bundled" and info.get("stopped_by_time") in (True, "True", 1), info
