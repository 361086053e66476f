"""Fine-tuning methods. Each folder registers itself; importing it here makes it available."""

from tuneforge.methods import adapter, bitfit, freeze, full, ia3, lora, prompt, ptuning  # noqa: F401  (one per folder)
from tuneforge.methods.base import Method, MethodConfig, build_method, register, registry

__all__ = ["Method", "MethodConfig", "build_method", "register", "registry"]
