"""The one resampling function: ``scipy.signal.resample_poly`` (polyphase, anti-aliased) at the
rational ratio of two rates. At the package's top level, below every layer, so that the readers
(channels stored at different rates), the preprocessing (a record to its model's rate) and the
delineator (to 250 Hz) share it."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

__all__ = ["resample", "resample_ratio"]


def resample_ratio(fs_in: float, fs_out: float, max_denominator: int = 1000) -> tuple[int, int]:
    """(up, down) integers with up/down = fs_out/fs_in (e.g. 300 -> 500 Hz: 5/3; 257 -> 500: 500/257)."""
    if fs_in <= 0 or fs_out <= 0:
        raise ValueError(f"sampling rates must be positive (got {fs_in} -> {fs_out})")
    frac = Fraction(fs_out / fs_in).limit_denominator(max_denominator)
    return frac.numerator, frac.denominator


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample along the last axis. Same rate: returned as is. Output length ceil(n * up / down)."""
    if fs_in == fs_out:
        return x
    up, down = resample_ratio(fs_in, fs_out)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return sps.resample_poly(np.asarray(x, dtype=np.float64), up, down, axis=-1).astype(dtype, copy=False)
