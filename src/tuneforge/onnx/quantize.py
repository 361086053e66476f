"""int8 weights for the exported graph: onnxruntime's dynamic quantisation.

Dynamic quantisation stores every MatMul/Gemm weight as int8 and quantises the activations to uint8 at run
time from their observed range, batch by batch; nothing to calibrate, so it needs no data. On CPUs with
VNNI (AVX512-VNNI, AVX-VNNI, AMX) onnxruntime then runs u8 x s8 integer matmuls; the weights take 1/4 of
the space.

- ``per_channel=True``: one scale per output column of each weight rather than one per matrix; the rows and
  columns of attention and feed-forward weights have quite different ranges. Measured on the MiniLM full
  fine-tune (``runs/compare-airline/full``, 2,000 test texts, fp32 accuracy 83.85%): per-channel halves the
  probability error against fp32 (mean |dp| 0.0072 vs 0.0162, max 0.35 vs 0.64) at 83.60% vs 83.55%.
- ``reduce_range``: 7-bit weights. Needed only on x86 CPUs *without* VNNI, where the u8 x s8 multiply-add
  instruction (``vpmaddubsw``) can saturate its 16-bit sums; with VNNI the full 8 bits are exact. We switch it
  on only when this CPU lacks VNNI: it costs accuracy (same model, per-tensor: 81.90% with it, 83.55% without;
  per-channel: 83.90% vs 83.60%, within noise). (The choice is about the machine that runs the model: export on the
  machine that will serve it, or rerun with a VNNI-less target in mind.)
"""

from __future__ import annotations

import logging
from pathlib import Path

from tuneforge.models.precision import _cpu_flags


def has_vnni() -> bool:
    flags = _cpu_flags()
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags) or not flags  # non-x86 (ARM): no saturation issue


def quantize_int8(source: Path, target: Path) -> dict:
    """Write the int8 version of ``source`` to ``target``; returns the settings for export.json."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    reduce_range = not has_vnni()
    root = logging.getLogger()  # quantize_dynamic logs a generic "consider pre-processing" notice on root
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=reduce_range)
    finally:
        root.setLevel(level)
    return {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8", "per_channel": True,
            "reduce_range": reduce_range}
