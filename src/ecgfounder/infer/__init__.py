"""Inference layer: the Predictor (files -> named probabilities or embeddings) and its writers.

The predictor and the backends (and torch) are imported on first use, so that checks made before
a model is loaded (an existing output file, a damaged side file) fail fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..io.sources import Source, expand_inputs

if TYPE_CHECKING:
    from .backends import Backend, OnnxBackend, TorchBackend, load_backend
    from .predictor import Embeddings, Predictor

__all__ = [
    "Predictor",
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
