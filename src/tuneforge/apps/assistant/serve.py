"""``tuneforge assistant serve FOLDER``: read the config and the keys, bind the port, load, then serve until
SIGTERM / Ctrl-C; the same steps, keys and shutdown as ``tuneforge serve`` (recipes/serve.py)."""

from __future__ import annotations

import sys
from pathlib import Path


def serve(folder: str | Path, overrides: list[str] | None = None, no_auth: bool = False, announce=None) -> None:
    import uvicorn

    from tuneforge.apps.assistant.app import create_app
    from tuneforge.apps.assistant.assistant import Assistant
    from tuneforge.apps.assistant.config import ChatServeConfig
    from tuneforge.config import load_config
    from tuneforge.recipes.runfolder import read_json
    from tuneforge.recipes.serve import _run_until_signal, bind, resolve_keys
    from tuneforge.serve.logs import log_config

    announce = announce or (lambda text: sys.stderr.write(text + "\n"))
    folder = Path(folder)
    built = folder / "config.yaml"
    section = {}
    if built.exists():
        from tuneforge.config.loading import read_yaml

        section = read_yaml(built)[0].get("serve") or {}
    cfg = load_config(ChatServeConfig, data=section, overrides=[o.removeprefix("serve.") for o in overrides or []])
    keys = resolve_keys(cfg, no_auth, announce)
    sock = bind(cfg.host, cfg.port)
    try:
        if cfg.threads is not None:
            import torch

            torch.set_num_threads(cfg.threads)
        assistant = Assistant.load(folder)
        app = create_app(assistant, cfg, keys)
        info = read_json(folder / "index.json")
        announce(f"assistant {folder} ({info['entries']} entries, {', '.join(assistant.retriever.modes)}) on "
                 f"http://{cfg.host}:{sock.getsockname()[1]}/ (chat page; POST /v1/chat); Ctrl-C stops.")
        server = uvicorn.Server(uvicorn.Config(app, log_config=log_config(), access_log=False, server_header=False,
                                               lifespan="on"))
        _run_until_signal(server, sock)
    finally:
        sock.close()
