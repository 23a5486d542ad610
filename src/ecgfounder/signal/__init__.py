"""Signal layer: preprocessing recipes, resampling, windowing and quality checks (NumPy/SciPy)."""

from .preprocess import RECIPES, Recipe, filter_chain, get_recipe, preprocess, preprocess_torch, zscore

__all__ = ["Recipe", "RECIPES", "get_recipe", "preprocess", "filter_chain", "zscore", "preprocess_torch"]
