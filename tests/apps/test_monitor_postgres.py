"""The monitor on a real PostgreSQL server: a throwaway one (initdb + pg_ctl in a temp folder, free port).

Skipped only when no PostgreSQL binaries exist (Debian: apt-get install postgresql; .ci/run installs it).
As root, the server runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from monitor_helpers import KeywordClassifier, config, item

from tuneforge.apps.monitor import open_monitor

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
if not BIN and shutil.which("initdb") is None:
    pytest.skip("no PostgreSQL binaries (initdb); install them with apt-get install postgresql",
                allow_module_level=True)
pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install 'psycopg[binary]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bindir = os.path.dirname(BIN[-1]) if BIN else os.path.dirname(shutil.which("initdb"))
    # not pytest's tmp_path: its folders are private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="tuneforge-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        os.chmod(root, 0o777)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_ingest_classify_alert_and_restart_on_postgresql(tmp_path, postgres_url):
    rule = {"kind": "threshold", "name": "t", "above": 0.5, "min_volume": 3}
    cfg = config(tmp_path, database=postgres_url, rules=[rule])
    monitor = open_monitor(cfg, classifiers={"sentiment": KeywordClassifier()})
    assert monitor.engine.dialect.name == "postgresql"
    assert monitor.ingest([item(1, 0, "bad"), item(2, 1, "bad"), item(1, 0, "bad")])["duplicates"] == 1
    monitor.process()
    monitor.close()
    again = open_monitor(cfg, classifiers={"sentiment": KeywordClassifier()})
    assert again.ingest([item(2, 1, "bad"), item(3, 2, "bad")]) == {"received": 2, "new": 1, "duplicates": 1}
    assert again.process()["alerts_opened"] == 1
    again.ingest([item(4, 3, "bad")])
    assert again.process()["alerts_opened"] == 0  # still open: not raised twice
    assert again.counts() == {"items": 4, "classified": 4, "alerts": 1}
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text("".join(f'{{"id": "f{i}", "time": {1700000000 + i}, "text": "good"}}\n'
                                           for i in range(7)))
    again.cfg.watch.folder = inbox
    assert again.scan_folder()["new"] == 7 and again.scan_folder()["lines"] == 0
