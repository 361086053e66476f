"""Fine-tuning methods. Each folder here is one method and registers itself with one ``register`` call;
importing the folders (all of them, found on disk) makes them available."""

import importlib
import pkgutil

from tuneforge.methods.base import Method, MethodBase, MethodConfig, build_method, register, registry

for _info in pkgutil.iter_modules(__path__):
    if _info.ispkg:
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Method", "MethodBase", "MethodConfig", "build_method", "register", "registry"]
