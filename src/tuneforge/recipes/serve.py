"""Serve runs over HTTP: ``tuneforge serve RUN_DIR [RUN_DIR ...] --config serve.yaml key=value``.

The recipe: read the config, the API keys and the port first (the cheap checks, so a mistake is reported
in a second, not after the models load), load and warm up the models, then hand the app to uvicorn, whose
signal handling stops accepting connections on SIGTERM / Ctrl-C and lets requests in flight finish.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from tuneforge.errors import TuneforgeError


def load_serve_config(path: str | Path | None = None, overrides: Sequence[str] = ()):
    from tuneforge.config import load_config
    from tuneforge.serve.config import ServeConfig

    return load_config(ServeConfig, path=path, overrides=list(overrides))


def resolve_keys(cfg, no_auth: bool, warn=None):
    """The API keys, or None with ``no_auth``; refuses to run an open server by accident."""
    from tuneforge.serve.auth import load_keys

    warn = warn or (lambda text: sys.stderr.write(text + "\n"))
    if no_auth:
        local = cfg.host in ("127.0.0.1", "localhost", "::1")
        warn(f"warning: --no-auth: anyone who can connect to {cfg.host}:{cfg.port} can use this server"
             + (" (only programs on this machine can)." if local else "; keep it off untrusted networks."))
        return None
    keys = load_keys(cfg.auth)
    if not keys:
        file_hint = f" or in {cfg.auth.keys_file}" if cfg.auth.keys_file else " or a file (auth.keys_file=keys.txt)"
        raise TuneforgeError(f"No API keys: set ${cfg.auth.keys_env} (comma-separated, NAME:KEY allowed){file_hint}, "
                             f"e.g. export {cfg.auth.keys_env}=alice:$(python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'). To serve without keys, pass --no-auth explicitly.")
    return keys


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the models load so a busy port fails fast."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TuneforgeError(f"Cannot listen on {host}:{port} ({exc.strerror}). Choose another --port, or stop "
                             "what uses it.") from None
    sock.set_inheritable(True)
    return sock


def serve(run_dirs: Sequence[str], config: str | Path | None = None, overrides: Sequence[str] = (),
          no_auth: bool = False, announce=None) -> None:
    """Blocks until the server stops (SIGTERM / Ctrl-C)."""
    import uvicorn

    from tuneforge.serve.app import create_app
    from tuneforge.serve.engine import load_models
    from tuneforge.serve.logs import log_config

    announce = announce or (lambda text: sys.stderr.write(text + "\n"))
    cfg = load_serve_config(config, overrides)
    keys = resolve_keys(cfg, no_auth, announce)
    specs = list(run_dirs) or cfg.runs
    sock = bind(cfg.host, cfg.port)
    try:
        if cfg.num_threads is not None:
            import torch

            torch.set_num_threads(cfg.num_threads)
        models = load_models(specs, cfg.engine, cfg.precision, cfg.num_threads)
        app = create_app(models, cfg, keys)
        port = sock.getsockname()[1]
        listing = ", ".join(f"{n} ({m.engine}, {m.load_seconds:.1f} s)" for n, m in models.items())
        announce(f"serving {listing} on http://{cfg.host}:{port} (API docs: /docs); Ctrl-C stops after the "
                 "requests in flight finish.")
        server = uvicorn.Server(uvicorn.Config(app, log_config=log_config(), access_log=False, server_header=False,
                                               timeout_graceful_shutdown=cfg.graceful_timeout_s, lifespan="on"))
        _run_until_signal(server, sock)
        announce("stopped: every request in flight was answered.")
    finally:
        sock.close()


class _Terminated(Exception):
    pass


def _raise_terminated(signum, frame) -> None:
    raise _Terminated


def _run_until_signal(server, sock: socket.socket) -> None:
    """uvicorn shuts down gracefully on SIGTERM / SIGINT, then raises the signal again so the process ends "by
    the signal". After a graceful shutdown that is not a failure: it ends here, and the command exits 0."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        server.run(sockets=[sock])
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
