"""From logits to what a model's outputs mean, by task: one function for every caller.

``multilabel``: a sigmoid per output (the released ECGFounder models); ``multiclass``: a softmax
over the outputs; ``regression``: the outputs de-normalised (``x * target_std + target_mean``;
identity without the statistics). Works on NumPy arrays and on torch tensors alike (tensors stay
differentiable, for explanations).

A record longer than the window is scored window by window; :func:`aggregate` turns the window
outputs into the record's: ``mean`` of the probabilities, ``max`` (any window), or ``logit``: the
activation of the mean window logit, i.e. the normalised geometric mean of the window probabilities
for a softmax model and the mean log-odds for a sigmoid one. ``logit`` treats the windows as
independent pieces of evidence: one window that rules a class out weighs more than under ``mean``.
A model may carry the aggregation it was validated with (``ModelInfo.aggregate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["activate", "aggregate", "TASKS", "AGGREGATES"]

TASKS = ("multilabel", "multiclass", "regression")
AGGREGATES = ("mean", "max", "logit")
#: probabilities are clipped to [_EPS, 1 - _EPS] before their logarithm (float32 saturates)
_EPS = 1e-7


def activate(
    logits: Any,
    task: str = "multilabel",
    target_mean: Sequence[float] | None = None,
    target_std: Sequence[float] | None = None,
) -> Any:
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
    std = torch.as_tensor(
        target_std if target_std is not None else [1.0] * z.shape[-1], dtype=z.dtype, device=z.device
    )
    mean = torch.as_tensor(
        target_mean if target_mean is not None else [0.0] * z.shape[-1], dtype=z.dtype, device=z.device
    )
    return z * std + mean


def aggregate(probs: Any, how: str = "mean", task: str = "multilabel") -> np.ndarray:
    """Window outputs (windows, outputs) -> the record's (outputs,), as ``how`` says (see the
    module's docstring). Regression outputs are values, not probabilities: ``logit`` is their mean."""
    if how not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)} (got {how!r})")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"expected (windows, outputs) with at least one window, got shape {p.shape}")
    if how == "max":
        return p.max(0).astype(np.float32)
    if how == "mean" or task == "regression":
        return p.mean(0).astype(np.float32)
    q = np.clip(p, _EPS, 1.0 - _EPS)
    if task == "multiclass":
        z = np.log(q).mean(0)
        e = np.exp(z - z.max())
        return (e / e.sum()).astype(np.float32)
    z = (np.log(q) - np.log1p(-q)).mean(0)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
