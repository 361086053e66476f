"""The dashboard in headless Chromium (Playwright driving Debian's /usr/bin/chromium): DOM checks and a screenshot.

Skipped only when no Chromium binary exists (apt-get install chromium; .ci/run installs it) or Playwright is
missing. The page is served by uvicorn on a free port from a thread, with an API key, fed the airline demo
stream through the gold-label stand-in classifier.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p and Path(p).exists()), None)
if CHROMIUM is None:
    pytest.skip("no Chromium binary; install it with apt-get install chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python: pip install playwright")

REPO = Path(__file__).resolve().parents[2]
KEY = "dashboard-test-key-0123456789"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    import uvicorn

    from tuneforge.apps.monitor import open_monitor
    from tuneforge.apps.monitor.app import create_app
    from tuneforge.apps.monitor.demo import GoldClassifier, airline_stream, replay
    from tuneforge.serve.auth import load_keys
    from tuneforge.serve.config import AuthConfig

    folder = tmp_path_factory.mktemp("dashboard")
    stream, gold = airline_stream(limit=1200)  # the burst sits at minute 600
    monitor = open_monitor(REPO / "configs" / "monitor-airline.yaml",
                           [f"database=sqlite:///{folder}/m.db", "watch.folder=null"],
                           classifiers={"sentiment": GoldClassifier(gold)})
    assert len(replay(monitor, stream, chunk=20)) == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(monitor, load_keys(AuthConfig(), {"TUNEFORGE_API_KEYS": KEY}), watch=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", folder
    server.should_exit = True
    thread.join(timeout=10)


def test_dashboard_shows_trends_alerts_items_and_filters(dashboard):
    url, folder = dashboard
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 960, "height": 1100})
        page.goto(f"{url}/#key={KEY}")
        page.wait_for_selector("#items tbody tr")
        series = page.eval_on_selector_all("#trend path.series", "els => els.map(e => e.dataset.topic)")
        assert set(series) == {"americanair", "jetblue", "southwestair", "united", "usairways", "virginamerica"}
        alerts = page.eval_on_selector_all("#alerts tbody tr", "rows => rows.map(r => [r.dataset.rule, r.dataset.key])")
        assert alerts == [["airline-spike", "virginamerica"]]
        assert page.locator("#items tbody tr").count() == 50
        assert "1230 items, 1 alerts" in page.inner_text("#status")
        page.screenshot(path=str(folder / "dashboard.png"), full_page=True)
        # the topic filter narrows the chart and the items to one airline
        page.select_option("#topic-filter", "jetblue")
        page.wait_for_function("document.querySelectorAll('#trend path.series').length === 1")
        topics = page.eval_on_selector_all("#items tbody tr td:nth-child(2)", "tds => tds.map(t => t.textContent)")
        assert topics and set(topics) == {"jetblue"}
        # without the key the page says so instead of showing data
        page.goto(f"{url}/")
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        assert "API key" in page.inner_text("#error")
        browser.close()
    png = (folder / "dashboard.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
