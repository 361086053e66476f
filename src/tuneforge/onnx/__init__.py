"""ONNX export, int8 quantisation and an onnxruntime predictor (``tuneforge export RUN_DIR OUT --format onnx``).

The folder format and the choices behind it are described in docs/EXPORT.md.
"""

from tuneforge.onnx.runtime import OnnxRun, is_onnx_folder

__all__ = ["OnnxRun", "is_onnx_folder"]
