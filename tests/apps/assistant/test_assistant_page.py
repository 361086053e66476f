"""The chat page in headless Chromium (Playwright driving Debian's /usr/bin/chromium): type, send, read the DOM.

Skipped only when no Chromium binary exists (apt-get install chromium; .ci/run installs it) or Playwright is
missing. The page is served by uvicorn on a free port from a thread, with an API key, over the tiny knowledge
base with the stand-in encoder and a stub generation run (assistant_helpers.py), as `tuneforge assistant serve`
serves it (the same create_app).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from assistant_helpers import StubGenerator, stand_in_assistant

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p and Path(p).exists()), None)
if CHROMIUM is None:
    pytest.skip("no Chromium binary; install it with apt-get install chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python: pip install playwright")

KEY = "chat-page-test-key-0123456789"


@pytest.fixture(scope="module")
def chat_url(tmp_path_factory):
    import uvicorn

    from tuneforge.apps.assistant.app import create_app
    from tuneforge.apps.assistant.config import ChatServeConfig
    from tuneforge.config import load_config
    from tuneforge.serve.auth import load_keys

    assistant = stand_in_assistant(tmp_path_factory.mktemp("chat-page"), generator=StubGenerator())
    cfg = load_config(ChatServeConfig)
    keys = load_keys(cfg.auth, {cfg.auth.keys_env: f"alice:{KEY}"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(assistant, cfg, keys), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.click("button:has-text('Send')")


def last_reply(page, count: int) -> dict:
    """Wait for the ``count``-th answer in the log and read it: text, route class, the 'why' line."""
    page.wait_for_function(f"document.querySelectorAll('#log .bot').length === {count}")
    return page.eval_on_selector("#log .bot:last-child", "div => ({answer: div.querySelector('span').textContent, "
                                                         "cls: div.className, why: div.querySelector('.why')"
                                                         ".textContent})")


def test_chat_page_answers_routes_and_explains(chat_url, tmp_path):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 820, "height": 640})
        page.goto(chat_url)
        assert page.title() == "tuneforge assistant"

        # a wrong key: the page says what is wrong, and no answer appears
        page.fill("#key", "not-the-key-0123456789")
        ask(page, "Where is my order?")
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        assert page.inner_text("#error") == ("A valid API key is required: send `Authorization: Bearer KEY` or "
                                             "`X-API-Key: KEY`.")
        assert page.locator("#log .bot").count() == 0
        page.screenshot(path=str(tmp_path / "wrong-key.png"))
        assert page.locator("#log .me").last.inner_text() == "Where is my order?"  # the question stays visible

        # the right key: an answer from the knowledge base, its route and reason
        page.fill("#key", KEY)
        ask(page, "Where is my order?")
        kb = last_reply(page, 1)
        assert kb["answer"] == "Track it under My orders." and kb["cls"] == "bot route-kb"
        assert kb["why"] == ("kb: matched a knowledge base question with cosine 1.00 >= 0.6 "
                             "(matched: \u201cWhere is my order?\u201d)")
        assert page.inner_text("#error") == ""  # the earlier error is cleared

        # far from every entry: the (stub) generation run answers, and the page says why
        ask(page, "Tell me a joke about penguins")
        generated = last_reply(page, 2)
        assert generated["cls"] == "bot route-generated"
        assert generated["answer"].startswith("generated reply to a")
        assert generated["why"].startswith("generated: the best match's cosine ")
        assert "is below 0.6: a generated reply (closest: \u201c" in generated["why"]  # not "matched"

        # a question with markup is shown as text, never run as HTML
        ask(page, "<b>refund</b> <img src=x onerror=alert(1)>?")
        last_reply(page, 3)
        assert page.locator("#log b, #log img").count() == 0
        assert page.locator("#log .me").last.inner_text() == "<b>refund</b> <img src=x onerror=alert(1)>?"

        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
        page.reload()  # the key is kept in the tab's sessionStorage, the conversation is not
        assert page.input_value("#key") == KEY and page.locator("#log div").count() == 0
        browser.close()
    png = (tmp_path / "chat.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
