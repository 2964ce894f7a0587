"""napari-bvdm beside another CTC reader (napari-ctc-io) and napari's own: the Data step opens without a
reader chooser, and one check box makes napari open dropped TIFFs and folders with napari-bvdm."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_BVDM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def prefs():
    from napari.settings import get_settings

    plugins = get_settings().plugins
    before = dict(plugins.extension2reader)
    plugins.extension2reader = {}
    yield plugins
    plugins.extension2reader = before


def test_the_data_step_opens_a_ctc_sequence_without_a_chooser(make_napari_viewer, qtbot, gowt1, prefs):
    from napari.errors import MultipleReaderError
    from npe2 import PluginManager

    from napari_bvdm.widgets import DataWidget

    seq = gowt1 / "01"
    viewer = make_napari_viewer()
    readers = {r.plugin_name for r in PluginManager.instance().iter_compatible_readers([str(seq)])}
    if "napari-ctc-io" not in readers:
        pytest.skip("napari-ctc-io is not installed (pip install napari-ctc-io)")
    with pytest.raises(MultipleReaderError):  # what a drop meets (no plugin named): napari shows its chooser
        viewer.open(str(seq), plugin=None)
    w = DataWidget(viewer)
    qtbot.addWidget(w)
    w.open_path(str(seq))
    qtbot.waitUntil(lambda: not w.runner.running, timeout=60_000)
    assert w.state.video is not None and w.status_text.startswith("ready"), w.status_text
    assert w.image_combo.currentText() == "Fluo-N2DH-GOWT1 01" or w.image_combo.currentText().endswith("01")
    assert w.labels_combo.currentText().endswith("TRA")


def test_the_reader_preference_opens_tiffs_and_folders_without_asking(make_napari_viewer, qtbot, gowt1, prefs):
    from napari_bvdm.widgets import DataWidget

    viewer = make_napari_viewer()
    w = DataWidget(viewer)
    qtbot.addWidget(w)
    assert not w.reader_box.isChecked()
    w.reader_box.setChecked(True)
    assert {prefs.extension2reader[p] for p in ("*.tif", "*.tiff", "*/")} == {"napari-bvdm"}
    layers = viewer.open(str(gowt1 / "01"), plugin=None)  # as a drop: no plugin named, the preference decides
    assert [type(layer).__name__ for layer in layers][:2] == ["Image", "Labels"]
    assert {layer.source.reader_plugin for layer in layers} == {"napari-bvdm"}
    layers = viewer.open(str(gowt1 / "01" / "t000.tif"), plugin=None)
    assert [layer.source.reader_plugin for layer in layers] == ["napari-bvdm"]
    w.reader_box.setChecked(False)
    assert not any(v == "napari-bvdm" for v in prefs.extension2reader.values())
