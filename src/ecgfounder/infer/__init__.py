"""Inference layer: the Predictor (files -> named probabilities or embeddings) and its writers."""

from .backends import Backend, OnnxBackend, TorchBackend, load_backend
from .predictor import Embeddings, Predictor
from ..io.sources import Source, expand_inputs

__all__ = ["Predictor", "Embeddings", "Source", "expand_inputs", "Backend", "TorchBackend", "OnnxBackend",
           "load_backend"]
