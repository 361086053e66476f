"""Fine-tuning methods. Each folder registers itself; importing it here makes it available."""

from tuneforge.methods import bitfit, freeze, full, lora  # noqa: F401  (one import per method folder)
from tuneforge.methods.base import Method, MethodConfig, build_method, register, registry

__all__ = ["Method", "MethodConfig", "build_method", "register", "registry"]
