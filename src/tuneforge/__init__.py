"""tuneforge: adapt pretrained language models to real tasks with little data and little compute.

    import tuneforge
    run = tuneforge.train("configs/airline-lora.yaml", ["train.epochs=1"])
    tuneforge.load(run.dir).predict(["the flight was late again"])
"""

from __future__ import annotations

__version__ = "0.1.0"

from tuneforge.apps.recommend import RecommendConfig, add_reranker, load_recommender, train_recommender  # noqa: E402
from tuneforge.config import TrainConfig  # noqa: E402
from tuneforge.errors import TuneforgeError  # noqa: E402
from tuneforge.explain import explain  # noqa: E402
from tuneforge.fewshot.protocol import FewShotResult, fewshot  # noqa: E402
from tuneforge.onnx import OnnxRun  # noqa: E402
from tuneforge.pretraining.config import PretrainConfig  # noqa: E402
from tuneforge.recipes.compare import compare  # noqa: E402
from tuneforge.recipes.distill import distill  # noqa: E402
from tuneforge.recipes.ensemble import Ensemble, ensemble  # noqa: E402
from tuneforge.recipes.lr_find import lr_find  # noqa: E402
from tuneforge.recipes.pretrain import pretrain  # noqa: E402
from tuneforge.recipes.prune import prune  # noqa: E402
from tuneforge.recipes.train import train  # noqa: E402
from tuneforge.recipes.zeroshot import zeroshot  # noqa: E402
from tuneforge.run import Run, Runs, load  # noqa: E402
from tuneforge.tasks.generation.run import GenerationRun  # noqa: E402
from tuneforge.tasks.token_classification.files import read_token_examples  # noqa: E402
from tuneforge.tasks.token_classification.run import TokenRun  # noqa: E402
from tuneforge.tune import tune  # noqa: E402

__all__ = ["Ensemble", "FewShotResult", "OnnxRun", "PretrainConfig", "RecommendConfig", "Run", "Runs", "TokenRun",
           "TrainConfig", "TuneforgeError", "__version__", "compare", "distill", "ensemble", "explain", "fewshot",
           "add_reranker", "load", "load_recommender", "lr_find", "pretrain", "prune", "read_token_examples", "train",
           "train_recommender", "tune", "zeroshot", "GenerationRun"]
