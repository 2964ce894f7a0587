"""docs/parameters.md's GenerateConfig tables are generated from the config's field docs and kept in sync."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "scripts" / "make_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parameters_md_is_generated_from_the_config():
    text = (ROOT / "docs" / "parameters.md").read_text()
    assert _make_docs().parameters_doc(text) == text, "run: .venv/bin/python scripts/make_docs.py"


def test_every_generate_setting_has_a_doc():
    from napari_bvdm.synthesis.config import GenerateConfig, field_docs

    top = GenerateConfig()
    for f in dataclasses.fields(GenerateConfig):
        value = getattr(top, f.name)
        if dataclasses.is_dataclass(value):
            docs = field_docs(type(value))
            assert set(docs) == {g.name for g in dataclasses.fields(value)}, f.name
            assert all(len(d) > 10 for d in docs.values()), f.name
        else:
            assert len(field_docs(GenerateConfig)[f.name]) > 10, f.name
