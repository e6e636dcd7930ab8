"""Training stage (needs ``pip install edgesmith[train]``): models, input pipeline, loop."""
from .loop import TrainConfig, train
from .models import MODELS, build_model

__all__ = ["TrainConfig", "train", "build_model", "MODELS"]
