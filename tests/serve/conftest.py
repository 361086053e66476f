"""Fixtures for the server: two tiny runs on one tiny BERT, keys, and an app factory around TestClient."""

from __future__ import annotations

import pytest
from serve_fakes import KEYS

import tuneforge


@pytest.fixture(scope="session")
def tiny_runs(make_tiny_config, tmp_path_factory) -> dict[str, str]:
    """{"sentiment-lora": folder, "sentiment-adapter": folder}: two methods on the same tiny backbone."""
    root = tmp_path_factory.mktemp("serve-runs")
    out = {}
    for name, method in [("sentiment-lora", "lora"), ("sentiment-adapter", "adapter")]:
        cfg = make_tiny_config(root / name)
        cfg["method"] = {"name": method}
        cfg["train"].update(max_steps=3, learning_rate=1e-2)
        out[name] = str(tuneforge.train(cfg, progress=False).dir)
    return out


@pytest.fixture(scope="session")
def served(tiny_runs):
    """The two runs loaded as the server loads them (fp32, so batched and unbatched results agree)."""
    from tuneforge.serve.engine import load_models

    return load_models([f"{name}={path}" for name, path in tiny_runs.items()], precision="fp32")


@pytest.fixture()
def make_client():
    """``make_client(models, **config) -> TestClient`` (lifespan started) with the KEYS above."""
    from fastapi.testclient import TestClient

    from tuneforge.config import load_config
    from tuneforge.serve.app import create_app
    from tuneforge.serve.auth import load_keys
    from tuneforge.serve.config import ServeConfig

    clients = []

    def make(models, *, no_auth: bool = False, **overrides):
        cfg = load_config(ServeConfig, overrides=[f"{k.replace('__', '.')}={v}" for k, v in overrides.items()])
        keys = None if no_auth else load_keys(cfg.auth, {cfg.auth.keys_env: ",".join(f"{n}:{k}" for n, k in
                                                                                    KEYS.items())})
        client = TestClient(create_app(models, cfg, keys), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)

