"""Models layer: the Net1D architecture, presets, registry, checkpoint reading and writing."""

from .checkpoint import infer_config, read_checkpoint
from .config import PRESETS, Net1DConfig, get_preset
from .factory import ModelInfo, adapt_leads, create_model, load_model, save_model
from .hub import resolve_weights
from .labels import ecgfounder_labels
from .net1d import Net1D
from .outputs import activate
from .registry import ModelEntry, WeightSource, get_model_entry, list_models, register_model, unregister_model

__all__ = [
    "Net1D",
    "Net1DConfig",
    "PRESETS",
    "get_preset",
    "ModelInfo",
    "adapt_leads",
    "create_model",
    "load_model",
    "save_model",
    "infer_config",
    "read_checkpoint",
    "resolve_weights",
    "ecgfounder_labels",
    "activate",
    "ModelEntry",
    "WeightSource",
    "get_model_entry",
    "list_models",
    "register_model",
    "unregister_model",
]
