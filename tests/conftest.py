"""Shared fixtures: where the real data lives, and a display check for GUI tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the dock's background warm-up freezes napari's heap out of the garbage collector (widgets/_warmup.py); napari's
# fixtures check for leaked viewers with gc.collect(), so tests switch it off (test_warmup.py turns it on)
os.environ.setdefault("NAPARI_BVDM_WARM_UP", "0")


def _data_dir() -> Path:
    env = os.environ.get("BVDM_SHARED_DATA")
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "data"


DATA = _data_dir()


def data_path(*parts: str) -> Path:
    """Path under ../shared/data; the calling test is skipped when it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} (set BVDM_SHARED_DATA)")
    return p


@pytest.fixture
def gowt1() -> Path:
    return data_path("Fluo-N2DH-GOWT1")


@pytest.fixture
def msc() -> Path:
    return data_path("Fluo-C2DL-MSC")


@pytest.fixture
def simplus() -> Path:
    return data_path("Fluo-N2DH-SIM+")


@pytest.fixture
def hela() -> Path:
    return data_path("Fluo-N2DL-HeLa-02-subset20-noGT")


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY")) or shutil.which("Xvfb") is not None


def pytest_collection_modifyitems(config, items):
    if has_display():
        return
    skip = pytest.mark.skip(reason="no display: install Xvfb (scripts/setup.sh does) to run GUI tests")
    for item in items:
        if "gui" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Give napari's ``make_napari_viewer`` teardown a ``rep_call`` when a later fixture skipped the test
    during setup (e.g. real data absent); without it the teardown raises AttributeError."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "setup" and not rep.passed and not hasattr(item, "rep_call"):
        item.rep_call = rep
