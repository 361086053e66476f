"""ONNX export of a decoder (tiny Llama, grouped-query attention): left padding and last-real-token pooling
are traced with dynamic lengths, so any batch gives the run's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

import tuneforge
from tuneforge.errors import TuneforgeError
from tuneforge.onnx import OnnxRun

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TEXTS = ["late", "great flight thanks", "my bag was lost again today", "</s>",
         "the crew was friendly today and the gate was late again and again and our plane was late"]


def test_a_left_padded_decoder_exports_with_its_pooling(make_tiny_config, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
    from test_backbones_decoder import build_tiny_decoder

    cfg = make_tiny_config(tmp_path / "run")
    cfg.update(model=str(build_tiny_decoder(tmp_path / "decoder")), method={"name": "lora"})
    cfg["train"].update(max_steps=2)
    run = tuneforge.load(tuneforge.train(cfg, progress=False).dir, precision="fp32")
    assert run.tokenizer.padding_side == "left"
    folder = run.export(tmp_path / "onnx", format="onnx", parity_samples=10)
    onnx_run = tuneforge.load(folder)
    assert isinstance(onnx_run, OnnxRun) and "token_type_ids" not in onnx_run.input_names
    for batch_size in (1, 2, 5):
        np.testing.assert_allclose(onnx_run.predict_proba(TEXTS, batch_size=batch_size), run.predict_proba(TEXTS),
                                   atol=1e-4, rtol=0)
    with pytest.raises(TuneforgeError, match="ONNX export.*Load it alone"):
        tuneforge.load([run.dir, folder])
