"""Preparation recipes of the other ECG foundation models, each exactly as its official code
prepares a recording (tested against fixtures made by running that code).

Unlike the ``ecgfounder`` recipe (filters per window at the model's rate), these work in two
steps, because their upstream code does: :meth:`ModelRecipe.prepare_record` on the whole recording
at its own rate (filters, resampling, scaling over the record), then :meth:`ModelRecipe.prepare_window`
on each window cut from the result at the recipe's working ``rate``. :func:`ecgfounder.prepare`
runs both when a model's contract names one of these recipes.

* ``st-mem`` (ST-MEM, Na et al. 2024): FFT resampling (``scipy.signal.resample``) to 250 Hz; per
  window of 2,250 samples a 5th-order Butterworth high-pass at 0.67 Hz and low-pass at 40 Hz
  (``sosfiltfilt``) and one mean and standard deviation over the window (zero where it is flat).
  Upstream cuts recordings into 10 s pieces at their own rate before resampling, and so do we:
  windows never straddle two pieces (a last piece shorter than 10 s is prepared on its own;
  upstream drops it).
* ``hubert-ecg`` (HuBERT-ECG, Coppola et al. 2024): FIR band-pass 0.05-47 Hz of ``int(0.3 fs)``
  taps (made odd; ``firwin``, ``filtfilt``) at the recording's rate, FFT resampling to 500 Hz, each
  lead scaled to [-1, 1] over the recording; per 5 s window the leads laid end to end, decimated
  by 5 (``scipy.signal.decimate``: order-8 Chebyshev I, zero phase) and split back into leads at
  100 Hz.
* ``ecg-fm`` (ECG-FM, McKeen et al. 2024; fairseq-signals ``scripts/preprocess/ecg/preprocess.py``):
  linear interpolation to 500 Hz (upstream's own sample mapping), each lead's mean removed and
  divided by its standard deviation over the recording (a flat lead becomes zeros), then 5 s
  windows (upstream keeps whole 5 s segments only; our last window is aligned to the end).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

__all__ = ["ModelRecipe", "MODEL_RECIPES", "get_model_recipe", "is_model_recipe"]


@dataclass(frozen=True)
class ModelRecipe:
    """A two-step preparation: ``rate`` is the working rate windows are cut at; ``window`` the
    window length there; the window step returns ``(leads, out_samples)`` at ``out_rate``."""

    name: str
    rate: float
    window: int
    out_rate: float
    out_samples: int
    #: upstream prepares recordings in pieces of this many seconds (None: whole)
    piece_s: float | None = None

    def prepare_record(self, signal: np.ndarray, fs: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare_window(self, window: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def min_samples(self, fs: float) -> int:
        """The shortest recording (samples at ``fs``) the record step can filter."""
        return 1


def _fft_resample(x: np.ndarray, fs: float, rate: float) -> np.ndarray:
    if fs == rate:
        return x
    return sps.resample(x, int(x.shape[-1] * (rate / fs)), axis=-1)


@dataclass(frozen=True)
class _STMEM(ModelRecipe):
    def prepare_record(self, signal: np.ndarray, fs: float) -> np.ndarray:
        return _fft_resample(np.asarray(signal, dtype=np.float64), fs, self.rate)

    def prepare_window(self, window: np.ndarray) -> np.ndarray:
        high = sps.butter(5, 0.67, btype="highpass", fs=self.rate, output="sos")
        low = sps.butter(5, 40.0, btype="lowpass", fs=self.rate, output="sos")
        x = sps.sosfiltfilt(low, sps.sosfiltfilt(high, window))
        loc = x.mean(axis=(-1, -2), keepdims=True)
        scale = x.std(axis=(-1, -2), keepdims=True)
        return np.divide(x - loc, scale, out=np.zeros_like(x), where=scale != 0)

    def min_samples(self, fs: float) -> int:
        return 3 * 6 * 2 + 1  # sosfiltfilt's default padding for two 5th-order sections chains


@dataclass(frozen=True)
class _HuBERTECG(ModelRecipe):
    band_hz: tuple[float, float] = (0.05, 47.0)

    def _taps(self, fs: float) -> np.ndarray:
        order = int(0.3 * fs)
        if order % 2 == 0:
            order += 1
        return sps.firwin(numtaps=order, cutoff=2.0 * np.asarray(self.band_hz) / float(fs), pass_zero=False)

    def prepare_record(self, signal: np.ndarray, fs: float) -> np.ndarray:
        x = sps.filtfilt(self._taps(fs), np.array([1.0]), np.asarray(signal, dtype=np.float64))
        x = _fft_resample(x, fs, self.rate)
        lo = x.min(axis=1, keepdims=True)
        hi = x.max(axis=1, keepdims=True)
        return 2 * (x - lo) / (hi - lo + 1e-8) - 1

    def prepare_window(self, window: np.ndarray) -> np.ndarray:
        leads = window.shape[0]
        flat = sps.decimate(window.reshape(-1), int(round(self.rate / self.out_rate)))
        return flat.reshape(leads, -1)

    def min_samples(self, fs: float) -> int:
        return 3 * len(self._taps(fs)) + 1  # filtfilt's default padding


@dataclass(frozen=True)
class _ECGFM(ModelRecipe):
    def prepare_record(self, signal: np.ndarray, fs: float) -> np.ndarray:
        from scipy.interpolate import interp1d

        x = np.asarray(signal, dtype=np.float64)
        if fs != self.rate:
            size = int(x.shape[-1] * (self.rate / fs))
            grid = np.linspace(0, size - 1, x.shape[-1])
            x = interp1d(grid, x, kind="linear")(np.arange(size))
        x = x - x.mean(axis=1, keepdims=True)
        std = x.std(axis=1, keepdims=True)
        x = x / np.where(std == 0, 1, std)
        x[np.broadcast_to(std == 0, x.shape)] = 0
        return x

    def prepare_window(self, window: np.ndarray) -> np.ndarray:
        return window


MODEL_RECIPES: dict[str, ModelRecipe] = {
    "st-mem": _STMEM(name="st-mem", rate=250.0, window=2250, out_rate=250.0, out_samples=2250, piece_s=10.0),
    "ecg-fm": _ECGFM(name="ecg-fm", rate=500.0, window=2500, out_rate=500.0, out_samples=2500),
    "hubert-ecg": _HuBERTECG(name="hubert-ecg", rate=500.0, window=2500, out_rate=100.0, out_samples=500),
}


def is_model_recipe(name: str) -> bool:
    return name in MODEL_RECIPES


def get_model_recipe(name: str) -> ModelRecipe:
    try:
        return MODEL_RECIPES[name]
    except KeyError:
        raise KeyError(f"unknown model recipe {name!r}; known: {', '.join(MODEL_RECIPES)}") from None
