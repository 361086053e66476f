"""Scale-out: two processes under torchrun (gloo, CPU) train what one process trains on the same global batch.

Each case launches ``torchrun --standalone --nproc_per_node 2 -m tuneforge train`` (the command users run; a
free port is picked by torchrun) on the tiny BERT, fp32, dropout 0, and compares the run folder with a
single-process run of the same config: weights, validation and test metrics, the logged steps, and that only
rank 0 wrote files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import tuneforge
from tuneforge.errors import TuneforgeError
from tuneforge.training import distributed
from tuneforge.training.distributed import World

SRC = Path(tuneforge.__file__).resolve().parents[1]
NO_DROPOUT = {"hidden": 0.0, "attention": 0.0, "classifier": 0.0}


def torchrun(args: list[str], cwd: Path, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "tuneforge", "train", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    files = sorted((run_dir / "model").glob("*.safetensors"))
    assert files, f"no safetensors in {run_dir / 'model'}"
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(str(f)).items()}


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def compare_with_one_process(config: dict, tmp_path: Path) -> tuple[Path, Path]:
    """Train ``config`` with torchrun (2 processes) and in this process; return both run folders."""
    two, one, cwd = tmp_path / "two", tmp_path / "one", tmp_path / "cwd"
    cwd.mkdir()
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({**config, "output_dir": str(two)}), encoding="utf-8")
    done = torchrun([str(config_file), "--quiet"], cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    tuneforge.train({**config, "output_dir": str(one)}, progress=False)

    assert list(cwd.iterdir()) == []  # no rank wrote a runs/ folder of its own
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    a, b = weights(two), weights(one)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=2e-5, msg=name)

    log_two, log_one = read_log(two), read_log(one)  # every line written once, by rank 0
    assert [(r["type"], r["step"]) for r in log_two] == [(r["type"], r["step"]) for r in log_one]
    for r2, r1 in zip(log_two, log_one):
        for key in ("loss", "accuracy", "macro_f1"):
            if key in r1:
                assert r2[key] == pytest.approx(r1[key], rel=1e-4, abs=1e-5), (key, r1, r2)
    m2, m1 = read_json(two / "metrics.json"), read_json(one / "metrics.json")
    for key in ("train.steps", "train.samples", "train.tokens", "test.accuracy", "train.best_step",
                "train.stopped_early"):
        assert m2[key] == m1[key], key
    assert m2["test.loss"] == pytest.approx(m1["test.loss"], rel=1e-4)
    info = read_json(two / "run.json")
    assert info["status"] == "complete" and info["distributed"] == {"processes": 2, "backend": "gloo"}
    assert "distributed" not in read_json(one / "run.json")
    run = tuneforge.load(two)
    assert run.predict(["the flight was late again"])[0]["label"] in run.labels
    return two, one


def test_two_processes_full_fine_tuning_equal_one(make_tiny_config, tmp_path):
    config = make_tiny_config(tmp_path / "unused")
    config["train"].update(dropout=NO_DROPOUT, batch_size=8, epochs=2)
    compare_with_one_process(config, tmp_path)


def test_two_processes_lora_accumulation_fgm_early_stopping_uneven_batches(make_tiny_config, tmp_path):
    """89 examples in batches of 8: the epoch's last batch has 1 example, so rank 1 has none (it joins the
    all-reduce at weight 0); two micro-batches per step (no_sync), FGM's two backward passes, and early
    stopping decided from rank 0's evaluation on both ranks."""
    config = make_tiny_config(tmp_path / "unused")
    config["method"] = {"name": "lora", "r": 4, "dropout": 0.0}
    config["data"]["max_train_samples"] = 89
    config["train"].update(dropout=NO_DROPOUT, batch_size=8, gradient_accumulation_steps=2, epochs=3,
                           adversarial="fgm", eval_every=2, early_stopping_patience=2, metric="loss")
    two, _ = compare_with_one_process(config, tmp_path)
    assert any(r["type"] == "eval" for r in read_log(two))


# --- the parts, in one process ---------------------------------------------------------------------

@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("n", [8, 7, 1])
def test_shards_split_the_batch_in_order(monkeypatch, size, n):
    batch = list(range(100, 100 + n))
    parts = []
    for rank in range(size):
        monkeypatch.setattr(distributed, "world", lambda rank=rank: World(rank=rank, size=size))
        parts.append(distributed.shard(batch, step_samples=16))
    real = [p for p in parts if p.share > 0]
    assert [i for p in real for i in p.indices] == batch  # contiguous slices, in order, nothing twice
    assert max(len(p.indices) for p in real) - min(len(p.indices) for p in real) <= 1
    assert sum(p.share for p in parts) == pytest.approx(n / 16)  # the micro-batch's share of the step
    assert all(p.weight == pytest.approx(p.share * size) for p in parts)  # DDP divides by the world size
    for p in parts:
        if p.share == 0:  # a stand-in: one real example, no weight
            assert len(p.indices) == 1 and p.weight == 0


def test_one_process_shard_is_the_whole_batch():
    part = distributed.shard([3, 1, 2], step_samples=6)
    assert part.indices == [3, 1, 2] and part.share == part.weight == 0.5


def test_global_batch_must_split_evenly():
    distributed.check_global_batch(8, 2)
    with pytest.raises(TuneforgeError, match=r"train.batch_size = 10 is the global batch.*not divisible by 4.*"
                                             r"batch_size=8 or 12"):
        distributed.check_global_batch(10, 4)


@pytest.mark.parametrize(("gpus", "said"), [
    (2, r'torchrun started 4 processes on this machine, one per GPU, but it has 2 GPU\(s\).*--nproc_per_node 2'),
    (0, r"this machine has no GPU that torch can use; under torchrun set train.device=cpu"),
])
def test_more_processes_than_gpus_is_an_error_naming_the_fix(monkeypatch, gpus, said):
    # torch.cuda.set_device raised "invalid device ordinal" (a traceback per process) for LOCAL_RANK >= GPUs
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: pytest.fail("set_device was called"))
    with pytest.raises(TuneforgeError, match=said):
        distributed.start(torch.device("cuda"), batch_size=8)
