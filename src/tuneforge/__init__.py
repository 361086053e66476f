"""tuneforge: adapt pretrained language models to real tasks with little data and little compute.

    import tuneforge
    run = tuneforge.train("configs/airline-lora.yaml", ["train.epochs=1"])
    tuneforge.load(run.dir).predict(["the flight was late again"])
"""

from __future__ import annotations

__version__ = "0.1.0"

from tuneforge.apps.recommend import RecommendConfig, load_recommender, train_recommender  # noqa: E402
from tuneforge.config import TrainConfig  # noqa: E402
from tuneforge.errors import TuneforgeError  # noqa: E402
from tuneforge.onnx import OnnxRun  # noqa: E402
from tuneforge.pretraining.config import PretrainConfig  # noqa: E402
from tuneforge.recipes.compare import compare  # noqa: E402
from tuneforge.recipes.distill import distill  # noqa: E402
from tuneforge.recipes.pretrain import pretrain  # noqa: E402
from tuneforge.recipes.prune import prune  # noqa: E402
from tuneforge.recipes.train import train  # noqa: E402
from tuneforge.recipes.zeroshot import zeroshot  # noqa: E402
from tuneforge.run import Run, Runs, load  # noqa: E402

__all__ = ["OnnxRun", "PretrainConfig", "RecommendConfig", "Run", "Runs", "TrainConfig", "TuneforgeError", "__version__",
           "compare", "distill", "load", "load_recommender", "pretrain", "prune", "train", "train_recommender", "zeroshot"]
