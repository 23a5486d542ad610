"""Inference layer: the Predictor (files -> named probabilities or embeddings) and its writers.

The predictor and the backends (and torch) are imported on first use, so that checks made before
a model is loaded (an existing output file, a damaged side file) fail fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..io.sources import Source, expand_inputs

if TYPE_CHECKING:
    from ..signal.stream import PrepareOptions
    from .backends import Backend, OnnxBackend, TorchBackend, load_backend
    from .predictor import Embeddings, Predictor, predictor_parts
    from .rows import ScoringOptions

__all__ = [
    "Predictor",
    "predictor_parts",
    "PrepareOptions",
    "ScoringOptions",
    "Embeddings",
    "Source",
    "expand_inputs",
    "Backend",
    "TorchBackend",
    "OnnxBackend",
    "load_backend",
]

_LAZY = {
    "Predictor": "predictor",
    "Embeddings": "predictor",
    "predictor_parts": "predictor",
    "PrepareOptions": "predictor",
    "ScoringOptions": "rows",
    "Backend": "backends",
    "TorchBackend": "backends",
    "OnnxBackend": "backends",
    "load_backend": "backends",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ecgfounder.infer' has no attribute {name!r}")
