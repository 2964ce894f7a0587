"""The dock as a new user sees it: a short Basic view, Advanced sections collapsed, a tooltip on every
control, no clipping on a 1366 x 768 screen, and no ``nan`` shown as a value."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_BVDM_CONFIG_DIR", str(tmp_path / "config"))


def _dock(make_napari_viewer, qtbot):
    from napari_bvdm.widgets import WorkflowWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    wf = WorkflowWidget(viewer)
    viewer.window.add_dock_widget(wf, area="right", name="BVDM synthesis")
    qtbot.waitUntil(wf.isVisible)
    return viewer, wf


def test_basic_view_is_short_and_advanced_sections_start_collapsed(make_napari_viewer, qtbot):
    _viewer, wf = _dock(make_napari_viewer, qtbot)
    counts = wf.control_counts()
    assert counts["basic"] <= 14 and counts["advanced"] >= 40, counts
    sections = wf._advanced_sections()
    assert len(sections) == 1 + len(wf.steps) and not any(sec.isExpanded() for sec in sections)
    s = wf.steps
    basic = [s["data"].open_btn, s["data"].image_combo, s["data"].labels_combo, s["data"].use_btn,
             s["shape"].fit_btn, s["texture"].default_btn, s["texture"].finetune_btn, s["flow"].default_btn,
             s["flow"].finetune_btn, s["generate"].preview_btn, s["export"].folder, s["export"].n_videos,
             s["export"].export_btn]
    names = {w.text() for w in basic if hasattr(w, "text") and isinstance(w.text(), str)}
    assert {"Open a video…", "Use these layers", "Fit on the labels", "Use bundled model", "Preview side by side",
            "Export CTC dataset"} <= names


def test_every_control_has_a_tooltip(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit

    _viewer, wf = _dock(make_napari_viewer, qtbot)
    headers = {id(b) for sec in [*wf.sections.values(), *wf._advanced_sections()]
               for b in sec.findChildren(QAbstractButton) if b.parent() is sec}
    bare = []
    for kind in (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit):
        for w in wf.findChildren(kind):
            if id(w) in headers or isinstance(w.parent(), (QComboBox, QAbstractSpinBox, QLineEdit)):
                continue
            if not w.toolTip().strip():
                bare.append(f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}")
    assert bare == []


def test_the_dock_scrolls_and_never_clips_on_a_small_screen(make_napari_viewer, qtbot):
    _viewer, wf = _dock(make_napari_viewer, qtbot)
    for sec in [*wf.sections.values(), *wf._advanced_sections()]:
        sec.expand(animate=False)
    qtbot.wait(50)
    inner = wf.scroll.widget()
    assert wf.scroll.viewport().width() >= inner.minimumSizeHint().width()
    assert wf.scroll.verticalScrollBar().maximum() > 0  # everything open: it scrolls


def test_a_value_that_is_not_a_number_is_never_shown(qtbot):
    from napari_bvdm.runtime.progress import Progress
    from napari_bvdm.widgets._jobs import JobRunner

    runner = JobRunner()
    qtbot.addWidget(runner)
    runner._t0 = 0.0
    runner._title = "Training"
    runner._on_yield(Progress(3, 10, "training", {"loss": 0.25, "val_loss": float("nan"), "crops_per_s": 40.0}))
    text = runner.status.text()
    assert "nan" not in text.lower() and "loss 0.25" in text and "crops/s 40" in text
