"""Training layer: config, the (distributed, resumable) loop."""

from .config import TrainConfig, load_config
from .loop import resume, train

__all__ = ["TrainConfig", "load_config", "train", "resume"]
