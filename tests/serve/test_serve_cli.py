"""``tuneforge serve`` on the command line and its config: refuses without keys, clear errors, shipped YAML."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import tuneforge
from tuneforge.cli.main import main
from tuneforge.config import load_config
from tuneforge.errors import TuneforgeError
from tuneforge.serve.auth import KeyChecker, load_keys, presented_key
from tuneforge.serve.config import AuthConfig, ServeConfig
from tuneforge.serve.limits import ApiError, RateLimiter

REPO = Path(__file__).resolve().parents[2]
GOOD_KEY = "k" * 24


@pytest.fixture()
def cli(monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` through ``tuneforge.cli.main.main`` in this process."""

    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", "serve", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        return (info.value.code or 0), captured.out, " ".join(captured.err.split())

    return invoke


def test_refuses_to_start_without_keys(cli, monkeypatch):
    monkeypatch.delenv("TUNEFORGE_API_KEYS", raising=False)
    code, _, err = cli("some-run", "port=0")
    assert code == 2 and "No API keys" in err and "TUNEFORGE_API_KEYS" in err and "--no-auth" in err
    assert "Traceback" not in err


def test_bad_keys_and_bad_config_are_clear(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEFORGE_API_KEYS", "short")
    code, _, err = cli("some-run", "port=0")
    assert code == 2 and "5 characters; use at least 16" in err
    monkeypatch.setenv("TUNEFORGE_API_KEYS", GOOD_KEY)
    code, _, err = cli("some-run", "limits.max_textz=3")
    assert code == 2 and 'unknown key "limits.max_textz"' in err and 'Did you mean "max_texts"?' in err
    code, _, err = cli("some-run", "port=0", "batching.max_wait_ms=-1")
    assert code == 2 and "batching.max_wait_ms" in err
    code, _, err = cli(tmp_path / "missing-run", "port=0")
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_targets_split_into_runs_and_overrides(cli, monkeypatch):
    from tuneforge.recipes import serve as recipe

    seen = {}
    monkeypatch.setattr(recipe, "serve", lambda runs, config, overrides, **kw: seen.update(
        runs=runs, config=config, overrides=overrides, **kw))
    cli("runs/a", "topic=runs/b", "limits.max_texts=8", "log_texts=true", "--port", "9001", "--no-auth")
    assert seen["runs"] == ["runs/a", "topic=runs/b"]
    assert seen["overrides"] == ["limits.max_texts=8", "log_texts=true", "port=9001"]
    assert seen["no_auth"] is True


def test_no_auth_warns(monkeypatch):
    from tuneforge.recipes.serve import resolve_keys

    warnings = []
    assert resolve_keys(ServeConfig(host="0.0.0.0"), no_auth=True, warn=warnings.append) is None
    assert "--no-auth" in warnings[0] and "0.0.0.0" in warnings[0]


def test_a_busy_port_is_reported_before_models_load():
    from tuneforge.recipes.serve import bind

    first = bind("127.0.0.1", 0)
    try:
        with pytest.raises(TuneforgeError, match="Cannot listen on 127.0.0.1:.*another --port"):
            taken = first.getsockname()[1]
            first.listen()
            bind("127.0.0.1", taken)
    finally:
        first.close()


def test_shipped_serve_config_validates():
    cfg = load_config(ServeConfig, path=REPO / "configs" / "serve.yaml")
    assert cfg == ServeConfig(), "configs/serve.yaml shows the defaults"


def test_config_show_serve_lists_every_field():
    from tuneforge.config.describe import describe

    text = describe("serve")
    for line in ["runs: list[str] = []", "  max_texts: int = 64", "  max_wait_ms: float = 5.0",
                 "log_texts: bool = False"]:
        assert line in text, line
    assert "method.name" not in text


def test_a_config_file_error_names_the_line(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text("port: 8000\nlimits:\n  max_text: 3\n", encoding="utf-8")
    with pytest.raises(TuneforgeError, match='line 3, unknown key "limits.max_text". Did you mean "max_texts"'):
        load_config(ServeConfig, path=path)


def test_keys_from_env_and_file(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# team keys\nops:{'o' * 20}\n\n{'p' * 20}\n", encoding="utf-8")
    keys = load_keys(AuthConfig(keys_file=keys_file), {"TUNEFORGE_API_KEYS": f"alice:{'a' * 20}, {'b' * 20}"})
    assert [k.name for k in keys] == ["alice", "key2", "ops", "key4"]
    assert "a" * 20 not in repr(keys)
    checker = KeyChecker(keys)
    assert checker.name_of("a" * 20) == "alice" and checker.name_of("p" * 20) == "key4"
    assert checker.name_of("a" * 19) is None and checker.name_of(None) is None
    with pytest.raises(TuneforgeError, match='"alice" is used twice'):
        load_keys(AuthConfig(), {"TUNEFORGE_API_KEYS": f"alice:{'a' * 20},alice:{'c' * 20}"})
    with pytest.raises(TuneforgeError, match="keys_file .* does not exist"):
        load_keys(AuthConfig(keys_file=tmp_path / "nope.txt"), {})
    assert load_keys(AuthConfig(), {}) == []


def test_presented_key_reads_bearer_or_x_api_key():
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"authorization": "bearer  abc "}) == "abc"
    assert presented_key({"x-api-key": "xyz"}) == "xyz"
    assert presented_key({"authorization": "Basic abc"}) is None


def test_token_bucket_allows_the_burst_then_the_rate():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("alice")
    with pytest.raises(ApiError) as info:
        limiter.check("alice")
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "1"
    limiter.check("bob")  # another key, another bucket
    now[0] += 0.5  # one token back at 2/s
    limiter.check("alice")
    with pytest.raises(ApiError):
        limiter.check("alice")


def test_the_command_serves_and_stops_gracefully_on_sigterm(tiny_runs, tmp_path):
    """The real process: starts, answers, logs JSON lines, and exits 0 after SIGTERM."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    src = str(Path(tuneforge.__file__).resolve().parents[1])
    env = {**os.environ, "TUNEFORGE_API_KEYS": f"ci:{GOOD_KEY}", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "tuneforge", "serve", f"lora={tiny_runs['sentiment-lora']}",
                                "--port", str(port), "precision=fp32"], env=env, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # up to 60 s for torch to import on a busy machine
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        response = httpx.post(f"{url}/v1/predict", json={"texts": ["great crew thanks"]},
                              headers={"X-API-Key": GOOD_KEY}, timeout=30)
        assert response.status_code == 200 and response.json()["adapter"] == "lora"
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request" and line["endpoint"] == "/v1/predict"]
    assert requests and requests[0]["key"] == "ci" and "great crew" not in json.dumps(requests)
    assert any(line.get("message") == "stopped" for line in lines)


def test_full_buckets_are_dropped_so_many_addresses_cannot_grow_the_table():
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0], max_buckets=2)
    limiter.check("ip:1")
    limiter.check("ip:2")
    now[0] += 5  # both refilled
    limiter.check("ip:3")
    assert set(limiter._buckets) == {"ip:3"}


def test_folders_that_are_not_classifier_runs_are_refused_before_loading(cli, monkeypatch, tmp_path):
    # a pretrain run, a run's model/ folder, a plain Hugging Face folder, a token run: before, the pretrain run
    # gave a list of 'unknown key "masking"' config errors and a token run a message about predict_tags()
    monkeypatch.setenv("TUNEFORGE_API_KEYS", GOOD_KEY)
    pretrained = tmp_path / "lm-run"
    (pretrained / "model").mkdir(parents=True)
    (pretrained / "model/config.json").write_text("{}", encoding="utf-8")
    (pretrained / "config.yaml").write_text("name: lm\nobjective: mlm\nmasking: {probability: 0.15}\n")
    (pretrained / "run.json").write_text(json.dumps({"status": "complete", "recipe": "pretrain"}))
    code, _, err = cli(pretrained, "port=0")
    assert code == 2 and "is a pretraining run" in err and f"model={pretrained / 'model'}" in err
    assert "unknown key" not in err and "Traceback" not in err
    code, _, err = cli(pretrained / "model", "port=0")
    assert code == 2 and "is a pretraining run" in err
    run = tmp_path / "ner-run"
    (run / "model").mkdir(parents=True)
    (run / "model/config.json").write_text("{}", encoding="utf-8")
    (run / "config.yaml").write_text("name: ner\ntask: token-classification\n", encoding="utf-8")
    code, _, err = cli(run, "port=0")
    assert code == 2 and "is a token-classification run" in err and f"tuneforge predict {run} --text" in err
    code, _, err = cli(run / "model", "port=0")
    assert code == 2 and f"give the run folder itself ({run})" in err
    hf = tmp_path / "hf-model"
    hf.mkdir()
    (hf / "config.json").write_text("{}", encoding="utf-8")
    code, _, err = cli(hf, "port=0")
    assert code == 2 and "is a Hugging Face model folder, not a tuneforge run folder" in err
    with pytest.raises(TuneforgeError, match="is a pretraining run"):  # predict, eval, generate load this way
        tuneforge.load(pretrained)
    with pytest.raises(TuneforgeError, match="is a pretraining run"):
        tuneforge.load([pretrained, run])
