"""Pick the compute precision: bf16 where the hardware runs it fast, fp32 elsewhere."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import torch

Precision = Literal["fp32", "bf16"]


@lru_cache(maxsize=None)
def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_is_fast(device: torch.device | str = "cpu") -> bool:
    """True where bf16 matmuls have hardware support: CUDA with bf16, CPUs with AMX or AVX-512 BF16.

    Without those units (older x86, most ARM laptops) bf16 on CPU is emulated and slower than fp32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = [getattr(torch.cpu, "_is_amx_tile_supported", None), getattr(torch.cpu, "_is_avx512_bf16_supported", None)]
    if any(check is not None and check() for check in checks):
        return True
    return bool({"amx_bf16", "avx512_bf16"} & _cpu_flags())


def resolve_precision(setting: str, device: torch.device | str = "cpu") -> Precision:
    """``auto`` becomes bf16 where fast, else fp32; ``bf16`` is honoured (slow where emulated)."""
    if setting == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    if setting in ("fp32", "bf16"):
        return setting  # type: ignore[return-value]
    raise ValueError(f"unknown precision {setting!r}")


def autocast(precision: Precision, device: torch.device | str = "cpu"):
    """The autocast context for ``precision`` (a no-op context for fp32)."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
