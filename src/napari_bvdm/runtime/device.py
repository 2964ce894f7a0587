"""Device choice: CUDA, then MPS, then CPU, or what the user asks for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DeviceInfo:
    """A compute device as shown to users."""

    name: str  # torch device string: "cpu", "cuda:0", "mps"
    description: str
    free_memory_bytes: int | None = None


def resolve_device(device: str | None = "auto"):
    """Return a ``torch.device`` for ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Raises
    ------
    ValueError
        When the requested device is not available on this machine.
    """
    import torch

    d = (device or "auto").strip().lower()
    if d == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here")
        idx = int(d.split(":")[1]) if ":" in d else 0
        if idx >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device(f"cuda:{idx}")
    if d == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' requested but MPS is not available here")
        return torch.device("mps")
    if d == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")


def native_bf16(device: str | None = "auto") -> bool:
    """Whether ``device`` computes bfloat16 natively: a CPU with AVX512-BF16 or AMX (Linux), a CUDA GPU that
    supports it (compute capability 8 or newer). Elsewhere bf16 is emulated and slower than fp32."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str | None = "auto") -> str:
    """``"fp32"`` or ``"bf16"`` for a precision setting; ``"auto"`` is bf16 where :func:`native_bf16`."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def list_devices() -> list[DeviceInfo]:
    """All devices usable here, CPU last, with names and free memory where known.

    On CUDA machines this creates a CUDA context (about 0.5 GiB) in the calling process; the napari
    widgets read ``nvidia-smi`` instead so that napari itself holds no GPU memory.
    """
    import os

    import torch

    out: list[DeviceInfo] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            try:
                free, total = torch.cuda.mem_get_info(i)
            except Exception:  # pragma: no cover - driver specific
                free, total = None, None
            name = torch.cuda.get_device_name(i)
            desc = f"cuda:{i} {name}"
            if free is not None:
                desc += f" ({free / 2**30:.1f} of {total / 2**30:.1f} GiB free)"
            out.append(DeviceInfo(f"cuda:{i}", desc, free))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append(DeviceInfo("mps", "mps (Apple GPU)"))
    out.append(DeviceInfo("cpu", f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"))
    return out


def release_device_memory(device) -> None:
    """Free cached accelerator memory after a job ends (a no-op for the CPU).

    ``gc.collect()`` runs only for accelerators: on the CPU it would walk napari's whole heap while holding
    the GIL and stall the event loop for up to a second, for no benefit.
    """
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind not in {"cuda", "mps"}:
        return
    import gc

    import torch

    gc.collect()
    if kind == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif kind == "mps" and hasattr(torch, "mps"):
        try:
            torch.mps.empty_cache()
        except Exception:  # pragma: no cover
            pass
