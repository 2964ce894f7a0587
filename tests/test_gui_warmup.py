"""The dock's background warm-up: napari's first layers come quicker, and the frozen heap is given back."""

from __future__ import annotations

import gc

import numpy as np
import pytest

pytest.importorskip("napari")


@pytest.fixture
def warmup(monkeypatch):
    from napari_bvdm.widgets import _warmup

    monkeypatch.setenv("NAPARI_BVDM_WARM_UP", "1")
    monkeypatch.setattr(_warmup, "_state", {"thread": None, "frozen": False, "users": 0})
    yield _warmup
    while _warmup._state["users"]:
        _warmup.release()
    gc.unfreeze()


def test_warm_up_freezes_then_releases(warmup):
    before = gc.get_freeze_count()
    thread = warmup.warm_up()
    assert thread is not None and warmup.warm_up() is thread  # once per process, however many docks
    thread.join(60)
    assert not thread.is_alive()
    assert warmup._state["frozen"] and gc.get_freeze_count() > before
    warmup.release()
    assert warmup._state["frozen"]  # the second dock still uses it
    warmup.release()
    assert not warmup._state["frozen"] and gc.get_freeze_count() == 0


def test_warm_up_can_be_switched_off(warmup, monkeypatch):
    monkeypatch.setenv("NAPARI_BVDM_WARM_UP", "0")
    assert warmup.warm_up() is None and warmup._state["users"] == 0


def test_the_dock_warms_up_and_layers_still_work(make_napari_viewer, qtbot, warmup):
    from napari_bvdm.widgets.workflow import WorkflowWidget

    viewer = make_napari_viewer()
    wf = WorkflowWidget(viewer)
    qtbot.addWidget(wf)
    thread = warmup._state["thread"]
    assert thread is not None and warmup._state["users"] == 1
    thread.join(60)
    viewer.add_image(np.zeros((3, 16, 16), np.uint16))
    viewer.add_labels(np.ones((3, 16, 16), np.uint16))
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Labels"]
    warmup.release()  # what closing the dock does (its destroyed signal)
    assert gc.get_freeze_count() == 0
