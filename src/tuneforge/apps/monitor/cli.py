"""``tuneforge monitor serve | ingest | demo`` (registered on the main CLI in one line)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tuneforge.errors import TuneforgeError

monitor_app = typer.Typer(help="Sentiment and topic monitor: ingest items, classify, alert, dashboard "
                               "(docs/MONITOR.md).", no_args_is_help=True)


def _check_config(config: Path) -> None:
    if "=" in str(config) and not config.exists():
        raise TuneforgeError(f'"{config}" looks like an override; the config file comes first: '
                             f"tuneforge monitor serve CONFIG.yaml {config}")


def _serve(monitor, no_auth: bool, announce) -> None:
    import uvicorn

    from tuneforge.apps.monitor.app import create_app
    from tuneforge.serve.auth import load_keys
    from tuneforge.serve.logs import log_config

    cfg = monitor.cfg
    keys = None
    if not no_auth:
        keys = load_keys(cfg.auth)
        if not keys:
            raise TuneforgeError(f"No API keys: set ${cfg.auth.keys_env} (comma-separated, NAME:KEY allowed), e.g. "
                                 f"export {cfg.auth.keys_env}=alice:$(python -c 'import secrets; "
                                 "print(secrets.token_urlsafe(32))'). To serve without keys, pass --no-auth.")
    announce(f"dashboard: http://{cfg.host}:{cfg.port}/#key=YOUR_KEY" if keys else
             f"dashboard: http://{cfg.host}:{cfg.port}/ (no authentication)")
    uvicorn.run(create_app(monitor, keys), host=cfg.host, port=cfg.port, log_config=log_config())


@monitor_app.command("serve")
def serve(
    config: Annotated[Path, typer.Argument(help="Monitor config (YAML), e.g. configs/monitor-airline.yaml.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. "
                                                                  "runs.sentiment=RUN_DIR port=8011.",
                                                             show_default=False)] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without API keys.")] = False,
) -> None:
    """Run the monitor: POST /v1/items, the watched folder, alerts, the dashboard at /."""
    from tuneforge.apps.monitor import open_monitor

    _check_config(config)
    monitor = open_monitor(config, list(overrides or []))
    _serve(monitor, no_auth, lambda text: typer.echo(text, err=True))


@monitor_app.command("ingest")
def ingest(
    config: Annotated[Path, typer.Argument(help="Monitor config (YAML).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides.", show_default=False)
                         ] = None,
) -> None:
    """One cycle without a server: read the watched folder, classify what is new, check the rules; print counts."""
    from tuneforge.apps.monitor import open_monitor

    from tuneforge.apps.monitor.config import MonitorConfig
    from tuneforge.config import load_config

    _check_config(config)
    cfg = load_config(MonitorConfig, path=config, overrides=list(overrides or []))
    if cfg.watch.folder is None or not Path(cfg.watch.folder).is_dir():  # before the runs load
        raise TuneforgeError(f"watch.folder {cfg.watch.folder} is not a folder; set watch.folder=FOLDER "
                             "(JSONL files of items, one per line).")
    monitor = open_monitor(cfg)
    result = monitor.process()
    sys.stdout.write(json.dumps({**result, **monitor.counts()}) + "\n")


@monitor_app.command("demo")
def demo(
    run: Annotated[Optional[Path], typer.Option(help="Sentiment run (default: runs/compare-airline/lora or the "
                                                     "newest runs/airline-*; else a quick run is trained).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the demo's database (OUT/monitor-demo.db, replaced on "
                                           "each demo).")] = Path("runs/monitor-demo"),
    speed: Annotated[float, typer.Option(help="Stream seconds per real second (0: as fast as possible).")] = 3600,
    serve: Annotated[bool, typer.Option("--serve", help="Keep the dashboard running after the replay "
                                                        "(no authentication; 127.0.0.1).")] = False,
    port: Annotated[int, typer.Option(help="Dashboard port with --serve.")] = 8010,
) -> None:
    """Replay the airline-sentiment test split as a stream with a planted burst; expect exactly one alert."""
    from tuneforge.apps.monitor import open_monitor
    from tuneforge.apps.monitor.demo import airline_stream, find_run, quick_run, replay

    if speed < 0:
        raise TuneforgeError("--speed must be 0 or more.")
    if run is None:
        run = find_run()
        if run is None:
            typer.echo("no airline run found under runs/; training a quick LoRA run first", err=True)
            run = quick_run()
    db = out / "monitor-demo.db"
    if db.exists():
        db.unlink()  # the demo's own database, by its own name: every demo starts from an empty stream
    shipped = Path("configs/monitor-airline.yaml")
    if not shipped.exists():  # run from elsewhere than the repository root: the source checkout's copy
        shipped = Path(__file__).resolve().parents[4] / "configs" / "monitor-airline.yaml"
    monitor = open_monitor(shipped, [f"runs.sentiment={run}", f"database=sqlite:///{db}", "watch.folder=null",
                                     f"port={port}"])
    stream, _ = airline_stream()
    typer.echo(f"replaying {len(stream)} items with {run} at {speed:g}x ...", err=True)
    alerts = replay(monitor, stream, speed=speed,
                    on_chunk=lambda n, r: typer.echo(f"  {n}/{len(stream)} items", err=True) if n % 400 == 0
                    else None)
    for a in monitor.alerts():
        typer.echo(f"alert #{a['id']} [{a['state']}] {a['rule']}: {a['message']} (opened {a['opened_at']})")
    typer.echo(f"{len(alerts)} alert(s); database {db}")
    if serve:
        _serve(monitor, True, lambda text: typer.echo(text, err=True))
