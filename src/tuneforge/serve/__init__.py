"""``tuneforge serve``: runs behind an HTTP API with API keys, rate limits, micro-batching and metrics.

``create_app(load_models([run_dir]), ServeConfig(), keys)`` builds the FastAPI app; the recipe in
:mod:`tuneforge.recipes.serve` adds config loading, key checks and uvicorn. See docs/SERVING.md.
"""

from tuneforge.serve.config import ServeConfig

__all__ = ["ServeConfig"]
