"""Inference layer: the Predictor (files -> named probabilities or embeddings) and its writers."""

from .predictor import Embeddings, Predictor
from .sources import Source, expand_inputs

__all__ = ["Predictor", "Embeddings", "Source", "expand_inputs"]
