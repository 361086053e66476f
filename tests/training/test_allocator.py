"""tuneforge keeps freed memory for reuse in training processes (glibc), and can be told not to."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")

PROBE = textwrap.dedent("""
    import ctypes, ctypes.util, sys, time
    from tuneforge.training.allocator import reuse_freed_memory
    if sys.argv[1] == "on":
        print("set", reuse_freed_memory())
    # A 64 MB block: above glibc's own mmap threshold it is mapped on malloc and unmapped on free, so the
    # minor page faults of touching it again count ~16,000 (4 KiB pages) per round; reused, almost none.
    import resource, torch
    # warm-up rounds: with reuse on, the heap settles within three (the first block, and sometimes the second or
    # third, land on fresh pages: measured per round 16397, 16384, 0, ... or 16396, 1, 16384, 0, ...)
    for _ in range(4):
        x = torch.ones(16 * 1024 * 1024)
        del x
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        x = torch.ones(16 * 1024 * 1024)
        del x
    print("faults", resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _run(mode: str, env_malloc: str | None = None) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("TUNEFORGE_MALLOC", None)
    if env_malloc is not None:
        env["TUNEFORGE_MALLOC"] = env_malloc
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True)
    return dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())


def test_freed_blocks_are_reused_instead_of_mapped_again():
    default = _run("off")
    tuned = _run("on")
    if tuned["set"] != "True":
        pytest.skip("this C library has no glibc mallopt")
    assert int(default["faults"]) > 5 * 10_000  # the stock allocator maps the block again every round
    assert int(tuned["faults"]) < 2_000


def test_system_setting_leaves_the_allocator_alone():
    assert _run("on", env_malloc="system")["set"] == "False"
