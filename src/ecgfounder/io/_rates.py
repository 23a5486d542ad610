"""Bringing channels stored at different rates to one rate, inside the I/O layer.

Used where a format lets each channel have its own rate (EDF/BDF, WFDB with several samples per
frame): every ECG channel is brought to the highest ECG rate by polyphase resampling
(``scipy.signal.resample_poly``), so no information is lost for the fastest channels and slower
ones are interpolated with an anti-aliasing filter; the caller notes what was resampled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..resampling import resample

__all__ = ["to_common_rate"]


def to_common_rate(
    rows: Sequence[np.ndarray], rates: Sequence[float], names: Sequence[str]
) -> tuple[np.ndarray, float, list[str]]:
    """``(signal (channels, samples), rate, notes)`` with every row at the highest of ``rates``.

    Rows are cut to the shortest length after resampling (they cover the same time span, up to a
    sample of rounding).
    """
    fs = max(rates)
    out, slow = [], []
    for row, rate, name in zip(rows, rates, names):
        if rate != fs:
            slow.append(f"{name} ({rate:g} Hz)")
            row = resample(np.asarray(row, dtype=np.float64), rate, fs)
        out.append(np.asarray(row, dtype=np.float64))
    length = min(len(r) for r in out)
    notes = [f"channels stored at different rates: resampled to {fs:g} Hz: {', '.join(slow)}"] if slow else []
    return np.stack([r[:length] for r in out]), float(fs), notes
