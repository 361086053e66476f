"""Serving an ONNX export (int8): loaded through ``tuneforge.load``, answered like the PyTorch run."""

from __future__ import annotations

import numpy as np
import pytest
from serve_fakes import ALICE

import tuneforge

pytest.importorskip("onnxruntime")
pytest.importorskip("tuneforge.onnx.runtime")

TEXTS = ["the flight was late again", "great crew thanks", "my seat question"]


@pytest.fixture(scope="module")
def onnx_export(tiny_runs, tmp_path_factory):
    run = tuneforge.load(tiny_runs["sentiment-lora"], precision="fp32")
    return run.export(tmp_path_factory.mktemp("onnx") / "lora-onnx", format="onnx", quantize="int8",
                      parity_samples=8)


def test_an_int8_onnx_export_is_served(make_client, onnx_export, tiny_runs):
    from tuneforge.serve.engine import load_models

    models = load_models([f"lora-onnx={onnx_export}"])
    assert models["lora-onnx"].engine == "onnx-int8" and models["lora-onnx"].method == "lora"
    client = make_client(models)
    body = client.post("/v1/predict", json={"texts": TEXTS}, headers=ALICE).json()
    assert body["adapter"] == "lora-onnx"
    got = np.array([list(p["scores"].values()) for p in body["predictions"]])
    want = tuneforge.load(tiny_runs["sentiment-lora"], precision="fp32").predict_proba(TEXTS)
    np.testing.assert_allclose(got, want, atol=0.05)  # int8 weights: close, not equal
    assert client.get("/v1/models", headers=ALICE).json()["models"][0]["engine"] == "onnx-int8"


def test_engine_torch_refuses_an_onnx_folder_and_onnx_a_run_folder(onnx_export, tiny_runs):
    from tuneforge.errors import TuneforgeError
    from tuneforge.serve.engine import load_models

    with pytest.raises(TuneforgeError, match="is an ONNX export"):
        load_models([str(onnx_export)], engine="torch")
    with pytest.raises(TuneforgeError, match="holds no .onnx model.*--format onnx"):
        load_models([tiny_runs["sentiment-lora"]], engine="onnx")


def test_num_threads_limits_an_onnx_export_too(onnx_export):
    """serve's num_threads reaches onnxruntime: one thread runs one pass at a time (default: one per core)."""
    from tuneforge.onnx.runtime import cpu_cores
    from tuneforge.serve.engine import load_models

    one = load_models([str(onnx_export)], threads=1)[onnx_export.name].predictor
    assert one.workers == 1
    assert load_models([str(onnx_export)])[onnx_export.name].predictor.workers == cpu_cores()
