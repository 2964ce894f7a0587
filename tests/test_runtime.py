"""Runtime services: configs, safe weights files, progress jobs, seeds, devices, CLI plumbing."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from napari_bvdm.runtime.config import Config, ConfigError
from napari_bvdm.runtime.device import list_devices, resolve_device
from napari_bvdm.runtime.progress import Cancelled, CancelToken, Progress, TerminalBar, run_job
from napari_bvdm.runtime.seeding import numpy_rng, torch_generator
from napari_bvdm.runtime.weights import WeightsError, load_weights, read_metadata, save_weights


@dataclass
class _Inner(Config):
    width: int = 16


@dataclass
class _Cfg(Config):
    steps: int = 10
    lr: float = 1e-3
    size: tuple[int, int] = (64, 64)
    sampler: str = "ddpm"
    inner: _Inner = None  # type: ignore[assignment]
    note: str | None = None

    def check(self) -> None:
        self._require(self.steps > 0, "steps", "must be positive")
        if self.inner is None:
            self.inner = _Inner()


def test_config_roundtrip(tmp_path):
    cfg = _Cfg(steps=5, size=(32, 48), inner=_Inner(width=8))
    path = cfg.save(tmp_path / "cfg.json")
    back = _Cfg.load(path)
    assert back == cfg
    assert back.size == (32, 48) and isinstance(back.inner, _Inner)


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="steps"):
        _Cfg(steps=0)
    with pytest.raises(ConfigError, match="unknown setting"):
        _Cfg.from_dict({"stepz": 3})
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        _Cfg.from_dict({"steps": "many"})
    with pytest.raises(ConfigError, match="expected 2 values"):
        _Cfg.from_dict({"size": [1, 2, 3]})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        _Cfg.load(tmp_path / "bad.json")
    assert _Cfg.from_dict({"steps": 3.0}).steps == 3


def test_weights_roundtrip_and_kind_check(tmp_path):
    net = torch.nn.Linear(3, 2)
    p = save_weights(tmp_path / "w.safetensors", "texture-ddpm", net.state_dict(), {"width": 3},
                     extra={"normalisation": {"offset": 1.0}})
    tensors, meta = load_weights(p, "texture-ddpm")
    assert torch.equal(tensors["weight"], net.weight.detach())
    assert meta["config"] == {"width": 3} and meta["extra"]["normalisation"]["offset"] == 1.0
    with pytest.raises(WeightsError, match="holds a 'texture-ddpm' model, but a 'flow' model"):
        load_weights(p, "flow")
    # a pickled checkpoint is refused, never unpickled
    torch.save(net.state_dict(), tmp_path / "pickled.pt")
    with pytest.raises(WeightsError, match="not a safetensors"):
        read_metadata(tmp_path / "pickled.pt")
    with pytest.raises(WeightsError, match="does not exist"):
        read_metadata(tmp_path / "missing.safetensors")


def test_weights_version_check(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(tmp_path / "v9.safetensors"),
              metadata={"format": "napari-bvdm-weights", "format_version": "9", "kind": "flow",
                        "config": "{}", "extra": "{}", "package_version": "9.0"})
    with pytest.raises(WeightsError, match="format version 9"):
        load_weights(tmp_path / "v9.safetensors", "flow")


def _job(n, token=None, log=None):
    try:
        for i in range(n):
            if token is not None:
                token.check()
            yield Progress(i + 1, n, "working", {"loss": 1.0 / (i + 1)}, stage="test")
        return "done"
    finally:
        if log is not None:
            log.append("cleaned")


def test_run_job_returns_value_and_reports(capsys):
    seen = []
    assert run_job(_job(3), seen.append) == "done"
    assert [e.step for e in seen] == [1, 2, 3] and seen[-1].fraction == 1.0
    bar = TerminalBar(min_interval=0)
    run_job(_job(2), bar)
    assert "test" in capsys.readouterr().err


def test_cancel_token_and_close_cleanup():
    token, log = CancelToken(), []
    job = _job(10, token, log)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(job)
    assert log == ["cleaned"]
    log2 = []
    job2 = _job(10, None, log2)
    next(job2)
    job2.close()  # what napari's worker.quit() does
    assert log2 == ["cleaned"]


def test_seeds_are_reproducible_and_independent():
    a = numpy_rng(7, "video", 1).random(4)
    assert np.array_equal(a, numpy_rng(7, "video", 1).random(4))
    assert not np.array_equal(a, numpy_rng(7, "video", 2).random(4))
    g1, g2 = torch_generator(3, "x"), torch_generator(3, "x")
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    assert list_devices()[-1].name == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_cli_help_and_unknown(capsys):
    from napari_bvdm.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "bvdm" in capsys.readouterr().out


def test_weights_file_is_readable_by_others(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        p = save_weights(tmp_path / "w.safetensors", "flow", {"a": torch.zeros(1)}, {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_precision_auto_is_bf16_only_where_the_cpu_computes_it_natively(tmp_path):
    from napari_bvdm.runtime.device import native_bf16, resolve_precision
    from napari_bvdm.synthesis import recipe
    from napari_bvdm.synthesis.config import GenerateConfig

    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    assert native_bf16("cpu") == ("avx512_bf16" in flags or "amx_bf16" in flags)
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    cfg = GenerateConfig.from_dict({"device": "cpu"})
    assert cfg.texture.precision == "auto"
    assert recipe.resolved(cfg).texture.precision == resolve_precision("auto", "cpu")  # what a record keeps


def test_generation_keeps_freed_memory_on_glibc():
    import sys

    from napari_bvdm.runtime.memory import keep_freed_memory

    expected = sys.platform.startswith("linux") and os.environ.get("NAPARI_BVDM_KEEP_FREED_MEMORY", "1") != "0"
    assert keep_freed_memory() is expected  # glibc's mallopt took both settings
    assert keep_freed_memory() is expected  # once per process


def test_owner_check_never_signals_a_process_on_windows(monkeypatch):
    """os.kill(pid, 0) would end the process on Windows: there a temp folder's owner counts as alive."""
    from napari_bvdm.runtime import locks

    called = []
    monkeypatch.setattr(locks.os, "name", "nt")
    monkeypatch.setattr(locks.os, "kill", lambda *a: called.append(a))
    assert locks.owner_gone(locks._host(), 999_999) is False and called == []
