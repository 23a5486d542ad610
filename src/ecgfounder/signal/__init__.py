"""Signal layer: preprocessing recipes, resampling, windowing, quality checks, model preparation."""

from .pipeline import PreparedECG, prepare, prepare_windows
from .preprocess import RECIPES, Recipe, filter_chain, get_recipe, preprocess, preprocess_torch, zscore
from .quality import QualityThresholds, check_quality, window_quality
from .resample import resample
from .stream import PreparedItem, PrepareOptions, prepare_item, prepared_stream, warm_up, worker_context
from .window import cut_windows, window_starts

__all__ = [
    "Recipe",
    "RECIPES",
    "get_recipe",
    "preprocess",
    "filter_chain",
    "zscore",
    "preprocess_torch",
    "prepare",
    "PreparedECG",
    "check_quality",
    "QualityThresholds",
    "resample",
    "cut_windows",
    "window_starts",
    "prepare_windows",
    "window_quality",
    "PrepareOptions",
    "PreparedItem",
    "prepare_item",
    "prepared_stream",
    "warm_up",
    "worker_context",
]
