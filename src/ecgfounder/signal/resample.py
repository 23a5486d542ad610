"""Resampling to a model's rate: :func:`ecgfounder.resampling.resample` (one implementation for io,
signal and models)."""

from __future__ import annotations

from ..resampling import resample, resample_ratio

__all__ = ["resample", "resample_ratio"]
