"""Cutting records into fixed windows (10 s for ECGFounder) and padding short ones."""

from __future__ import annotations

import numpy as np

__all__ = ["window_starts", "cut_windows"]


def window_starts(n_samples: int, window: int, stride: int | None = None) -> list[int]:
    """Start indices of windows of ``window`` samples every ``stride`` (default: ``window``, no
    overlap). A final window is aligned to the end of the record when the stride leaves a tail, so
    every sample is covered; a record shorter than one window gives ``[0]``."""
    stride = stride or window
    if stride <= 0 or window <= 0:
        raise ValueError("window and stride must be positive")
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, stride))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def cut_windows(x: np.ndarray, window: int, stride: int | None = None) -> tuple[np.ndarray, list[int]]:
    """(windows (W, ..., window), starts) from x (..., samples); a short x gives one shorter window
    (padding is done after preprocessing, see :func:`ecgfounder.signal.pipeline.prepare`)."""
    starts = window_starts(x.shape[-1], window, stride)
    if x.shape[-1] <= window:
        return x[None], starts
    return np.stack([x[..., s : s + window] for s in starts]), starts
