"""From logits to what a model's outputs mean, by task: one function for every caller.

``multilabel``: a sigmoid per output (the released ECGFounder models); ``multiclass``: a softmax
over the outputs; ``regression``: the outputs de-normalised (``x * target_std + target_mean``;
identity without the statistics). Works on NumPy arrays and on torch tensors alike (tensors stay
differentiable, for explanations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["activate", "TASKS"]

TASKS = ("multilabel", "multiclass", "regression")


def activate(logits: Any, task: str = "multilabel", target_mean: Sequence[float] | None = None,
             target_std: Sequence[float] | None = None) -> Any:
    """``logits`` (..., outputs) turned into probabilities or values for ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    if isinstance(logits, np.ndarray):
        z = logits.astype(np.float64, copy=False)
        if task == "multiclass":
            e = np.exp(z - z.max(-1, keepdims=True))
            return (e / e.sum(-1, keepdims=True)).astype(np.float32)
        if task == "multilabel":
            return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        std = np.asarray(target_std if target_std is not None else 1.0, dtype=np.float64)
        mean = np.asarray(target_mean if target_mean is not None else 0.0, dtype=np.float64)
        return (z * std + mean).astype(np.float32)
    import torch

    z = logits.float()
    if task == "multiclass":
        return torch.softmax(z, dim=-1)
    if task == "multilabel":
        return torch.sigmoid(z)
    if target_std is None and target_mean is None:
        return z
    std = torch.as_tensor(target_std if target_std is not None else [1.0] * z.shape[-1], dtype=z.dtype,
                          device=z.device)
    mean = torch.as_tensor(target_mean if target_mean is not None else [0.0] * z.shape[-1], dtype=z.dtype,
                           device=z.device)
    return z * std + mean
