"""Load test of `tuneforge serve` on loopback: concurrent clients for a fixed time, then texts/s and latency.

Starts the server as a subprocess (`python -m tuneforge serve RUN --port P`, a fresh API key, the rate limit
lifted so it does not cap the load), waits for /healthz, then runs N asyncio clients (httpx) that each send
small batches of airline-sentiment test texts back to back until the time is up (and at most
--max-requests in all). Reports texts/s, requests/s, p50/p99 latency, error count (any non-200 or
transport error), texts per forward pass (from /metrics: how much micro-batching merged), and how busy
other processes kept the CPU. Stops the server with SIGTERM (graceful shutdown) and checks it exits 0.

    PYTHONPATH=src .venv/bin/python bench/serve_load.py                       # 60 s, 8 clients, 4 texts each
    PYTHONPATH=src .venv/bin/python bench/serve_load.py --duration 10 --clients 4
    PYTHONPATH=src .venv/bin/python bench/serve_load.py --run OUT_ONNX_FOLDER --write-docs

Only loopback (127.0.0.1) is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

from docs_section import write_docs  # bench/ is sys.path[0] when run as a script

REPO = pathlib.Path(__file__).resolve().parents[1]
SECTION = ("<!-- serve_load -->", "<!-- /serve_load -->")
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def airline_texts() -> list[str]:
    from tuneforge.data import load_builtin

    return [e.text for e in load_builtin("airline-sentiment").test]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_busy_seconds() -> float:
    try:
        fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    except OSError:
        return float("nan")
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(limit: float) -> None:
    """Wait (at most ``limit`` seconds) until other processes keep under 0.2 cores busy for 3 s."""
    deadline = time.monotonic() + limit
    while True:
        busy0, own0, t0 = machine_busy_seconds(), os.times(), time.perf_counter()
        time.sleep(3.0)
        own1 = os.times()
        own = (own1.user + own1.system) - (own0.user + own0.system)
        busy = (machine_busy_seconds() - busy0 - own) / (time.perf_counter() - t0)
        if busy < 0.2:
            return
        if time.monotonic() > deadline:
            print(f"still {busy:.1f} cores busy after waiting {limit:.0f} s; running anyway", file=sys.stderr)
            return


def start_server(args, port: int, key: str, log_file) -> subprocess.Popen:
    env = {**os.environ, "TUNEFORGE_API_KEYS": f"bench:{key}", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "tuneforge", "serve", str(args.run), "--host", HOST, "--port", str(port),
               "rate_limit.requests_per_second=1000000", "rate_limit.burst=1000000",
               f"batching.max_batch_size={args.max_batch_size}", f"batching.max_wait_ms={args.max_wait_ms}",
               f"engine={args.engine}", f"precision={args.precision}"]
    return subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file, cwd=REPO)


async def wait_healthy(client, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode} before it was ready")
        with contextlib.suppress(Exception):
            if (await client.get("/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.25)
    raise SystemExit(f"the server was not healthy within {timeout:.0f} s")


async def load(args, port: int, key: str, server: subprocess.Popen, texts: list[str]) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        await wait_healthy(client, server, args.startup_timeout)
        latencies: list[float] = []
        errors: dict[str, int] = {}
        sent = [0]
        cursor = [0]

        async def one_client(end: float, record: bool) -> None:
            while time.monotonic() < end and sent[0] < args.max_requests:
                start = cursor[0]
                cursor[0] = (start + args.batch) % len(texts)
                batch = [texts[(start + i) % len(texts)] for i in range(args.batch)]
                sent[0] += record
                t0 = time.perf_counter()
                try:
                    response = await client.post("/v1/predict", json={"texts": batch})
                    status = str(response.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                if record:
                    latencies.append(time.perf_counter() - t0)
                    if status != "200":
                        errors[status] = errors.get(status, 0) + 1

        if args.warmup > 0:  # connections opened, allocator and kernels warm; not recorded
            await asyncio.gather(*(one_client(time.monotonic() + args.warmup, False) for _ in range(args.clients)))
        before_metrics = (await client.get("/metrics")).text
        busy0, own0, server0, t0 = machine_busy_seconds(), os.times(), cpu_seconds(server.pid), time.perf_counter()
        end = time.monotonic() + args.duration
        await asyncio.gather(*(one_client(end, True) for _ in range(args.clients)))
        wall = time.perf_counter() - t0
        busy1, own1, server1 = machine_busy_seconds(), os.times(), cpu_seconds(server.pid)
        after_metrics = (await client.get("/metrics")).text
    own = (own1.user + own1.system) - (own0.user + own0.system)
    other = max(0.0, (busy1 - busy0) - own - (server1 - server0)) / wall
    passes, batch_texts = (_metric(after_metrics, name) - _metric(before_metrics, name)
                           for name in ("tuneforge_batch_texts_count", "tuneforge_batch_texts_sum"))
    latencies.sort()
    n = len(latencies)
    ok = n - sum(errors.values())
    return {"requests": n, "errors": sum(errors.values()), "error_kinds": errors, "seconds": round(wall, 2),
            "requests_per_second": round(ok / wall, 1), "texts_per_second": round(ok * args.batch / wall, 1),
            "p50_ms": round(_quantile(latencies, 0.50) * 1000, 1),
            "p99_ms": round(_quantile(latencies, 0.99) * 1000, 1),
            "max_ms": round(latencies[-1] * 1000, 1) if n else float("nan"),
            "forward_passes": int(passes), "texts_per_forward_pass": round(batch_texts / passes, 1) if passes else 0,
            "server_cpu_cores": round((server1 - server0) / wall, 2), "client_cpu_cores": round(own / wall, 2),
            "other_busy_cores": round(other, 2)}


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def stop_server(server: subprocess.Popen, timeout: float = 60) -> int:
    server.send_signal(signal.SIGTERM)  # graceful: requests in flight finish, then the process exits
    try:
        return server.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


def engine_of(log_path: pathlib.Path) -> str:
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("message") == "ready":
                return ", ".join(record.get("engines", {}).values())
    return "?"


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", pathlib.Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    return "unknown CPU"


def markdown_section(result: dict, args, command: str) -> str:
    r = result
    setup = (f"{args.clients} concurrent clients on loopback, each sending {args.batch} airline-sentiment test texts "
             f"per request back to back for {r['seconds']:.0f} s (after a {args.warmup:g} s warm-up), to one server "
             f"process serving `{os.path.relpath(args.run, REPO)}` on {r['engine']} (micro-batching up to "
             f"{args.max_batch_size} texts, {args.max_wait_ms:g} ms wait). Measured {time.strftime('%Y-%m-%d')} on "
             f"{os.cpu_count()} cores ({cpu_name()}); the clients run on the same cores.")
    header = ("| texts/s | requests/s | p50 latency | p99 latency | max | errors | requests | texts per forward pass "
              "| server CPU | client CPU | other processes |")
    row = (f"| {r['texts_per_second']:.0f} | {r['requests_per_second']:.0f} | {r['p50_ms']:.0f} ms | "
           f"{r['p99_ms']:.0f} ms | {r['max_ms']:.0f} ms | {r['errors']} | {r['requests']} | "
           f"{r['texts_per_forward_pass']:.1f} | {r['server_cpu_cores']:.2f} cores | {r['client_cpu_cores']:.2f} "
           f"cores | {r['other_busy_cores']:.2f} cores |")
    note = (f"Command: `{command}`. The server exited with code {r['server_exit_code']} after SIGTERM (0: graceful "
            "shutdown, requests in flight answered). \"other processes\" is the CPU time other jobs on the machine "
            "took during the run; above ~0.3 cores the figures understate what an idle machine reaches.")
    lines = [SECTION[0], "## `tuneforge serve` under load", "", setup, "", header,
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", row, "", note, SECTION[1]]
    return "\n".join(lines) + "\n"




def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=pathlib.Path, default=REPO / "runs" / "compare-airline" / "lora",
                        help="run folder or ONNX export folder (default: runs/compare-airline/lora)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of measured load (default 60)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unrecorded load first (default 3)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--batch", type=int, default=4, help="texts per request (default 4)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many requests")
    parser.add_argument("--max-batch-size", type=int, default=64, help="server batching.max_batch_size")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="server batching.max_wait_ms")
    parser.add_argument("--engine", choices=["auto", "torch", "onnx"], default="auto")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="first wait up to this long for other processes to go idle")
    parser.add_argument("--write-docs", action="store_true", help="replace the serve_load section of --docs-file")
    parser.add_argument("--docs-file", type=pathlib.Path, default=REPO / "docs" / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.clients < 1 or args.batch < 1 or args.duration > 3600:
        parser.error("--duration must be in (0, 3600] s, --clients and --batch at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    texts = airline_texts()
    if args.wait_idle > 0:
        wait_until_idle(args.wait_idle)
    port, key = free_port(), secrets.token_urlsafe(32)
    with tempfile.NamedTemporaryFile("w+", suffix=".log", prefix="serve-load-", delete=False) as log_file:
        log_path = pathlib.Path(log_file.name)
        server = start_server(args, port, key, log_file)
        try:
            result = asyncio.run(load(args, port, key, server, texts))
        except BaseException:
            stop_server(server)
            print(f"server log: {log_path}", file=sys.stderr)
            raise
        result["server_exit_code"] = stop_server(server)
    result["engine"] = engine_of(log_path)
    result["clients"], result["texts_per_request"] = args.clients, args.batch
    print(json.dumps(result))
    print(f"server log (one JSON line per request): {log_path}", file=sys.stderr)
    if args.write_docs:
        command = "PYTHONPATH=src .venv/bin/python bench/serve_load.py " + " ".join(argv if argv is not None
                                                                                    else sys.argv[1:])
        write_docs(args.docs_file, markdown_section(result, args, command.strip()), SECTION)
    return 0 if result["errors"] == 0 and result["server_exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
