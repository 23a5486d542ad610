"""The ``ecgfounder`` preprocessing recipe, exactly as the official training pipeline applies it.

Per lead: 50 Hz notch (``iirnotch``, Q=30) with ``filtfilt``; 4th-order Butterworth band-pass
0.67-40 Hz (b/a form) with ``filtfilt``; subtraction of a 201-sample running median (``medfilt``,
zero-padded edges). Then a z-score with ONE mean and ONE standard deviation over the whole
(leads, samples) window: ``(x - mean) / (std + 1e-8)``.

Three implementations give the same numbers (tested against the official outputs to 1e-5):

* ``numba``: one compiled pass per lead (filter, filter, running median with a sorted window),
  leads and records split over threads. The default when numba is installed.
* ``scipy``: the reference, ``filtfilt`` over all rows at once and ``medfilt`` lead by lead.
* :func:`preprocess_torch`: on tensors (GPU), the linear filter chain applied as one precomputed
  matrix, the median by sorting unfolded windows.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal as sps

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "Recipe",
    "RECIPES",
    "get_recipe",
    "preprocess",
    "filter_chain",
    "zscore",
    "preprocess_torch",
    "numba_available",
]

ZScore = Literal["global", "lead", "none"]


@dataclass(frozen=True)
class Recipe:
    """A preprocessing recipe. ``ecgfounder`` is the official one; the others are documented variants."""

    name: str = "ecgfounder"
    mains_hz: float | None = 50.0  # notch frequency (None: no notch)
    notch_q: float = 30.0
    band_hz: tuple[float, float] = (0.67, 40.0)
    order: int = 4
    median_window: int = 201  # samples at the recipe's fs (500 Hz: 0.4 s)
    zscore: ZScore = "global"
    eps: float = 1e-8
    fs: float = 500.0

    def with_options(self, *, mains_hz: float | None | str = "keep", zscore: ZScore | None = None) -> Recipe:
        changes: dict[str, object] = {}
        if mains_hz != "keep":
            changes["mains_hz"] = mains_hz
        if zscore is not None:
            changes["zscore"] = zscore
        return replace(self, **changes) if changes else self

    def median_samples(self, fs: float) -> int:
        """Median window for a sampling rate (201 at 500 Hz; scaled and kept odd elsewhere)."""
        if fs == self.fs:
            return self.median_window
        k = int(round(self.median_window * fs / self.fs))
        return k if k % 2 else k + 1


RECIPES: dict[str, Recipe] = {
    "ecgfounder": Recipe(),
    "ecgfounder-60hz": Recipe(name="ecgfounder-60hz", mains_hz=60.0),
    "ecgfounder-lead-zscore": Recipe(name="ecgfounder-lead-zscore", zscore="lead"),
}


def get_recipe(recipe: str | Recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    try:
        return RECIPES[recipe]
    except KeyError:
        from ..errors import ContractError
        from .model_recipes import MODEL_RECIPES

        if recipe in MODEL_RECIPES:
            raise ContractError(
                f"{recipe!r} is another model's preparation of whole recordings: prepare, predict, embed, "
                "train and compare run it; this step (e.g. `monitor`, which reads long recordings in "
                "chunks) runs the ecgfounder recipes only"
            ) from None
        raise KeyError(f"unknown preprocessing recipe {recipe!r}; known: {', '.join(RECIPES)}") from None


@lru_cache(maxsize=32)
def _coefficients(
    recipe: Recipe, fs: float
) -> tuple[tuple[np.ndarray, np.ndarray] | None, tuple[np.ndarray, np.ndarray]]:
    notch = None
    if recipe.mains_hz:
        if recipe.mains_hz >= fs / 2:
            raise ValueError(f"notch at {recipe.mains_hz} Hz needs fs > {2 * recipe.mains_hz} Hz (got {fs})")
        notch = sps.iirnotch(recipe.mains_hz, recipe.notch_q, fs)
    low, high = recipe.band_hz
    if high >= fs / 2:
        raise ValueError(f"band-pass up to {high} Hz needs fs > {2 * high} Hz (got {fs})")
    band = sps.butter(recipe.order, [low, high], btype="bandpass", fs=fs)
    return notch, band


def numba_available() -> bool:
    try:
        from . import _kernels  # noqa: F401
    except ImportError:
        return False
    return True


def _workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, int(workers))
    return max(
        1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1), 8)
    )


_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def _pool(n: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != n:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = ThreadPoolExecutor(n, thread_name_prefix="ecgfounder-pre")
        _POOL_SIZE = n
    return _POOL


def _map_rows(func, rows: np.ndarray, out: np.ndarray, workers: int, group: int = 1) -> None:
    """Run ``func(rows[i:j], out[i:j])`` over contiguous chunks (whole groups of ``group`` rows,
    i.e. whole records), in threads when there is more than one chunk."""
    n = rows.shape[0] // group
    if workers <= 1 or n < 2:
        func(rows, out)
        return
    bounds = np.linspace(0, n, min(workers, n) + 1).astype(int) * group
    futures = [_pool(workers).submit(func, rows[i:j], out[i:j]) for i, j in zip(bounds, bounds[1:]) if j > i]
    for f in futures:
        f.result()


def filter_chain(
    x: ArrayLike,
    fs: float = 500.0,
    recipe: str | Recipe = "ecgfounder",
    *,
    backend: Literal["auto", "numba", "scipy"] = "auto",
    workers: int | None = None,
) -> NDArray[np.float64]:
    """Notch, band-pass and baseline (running median) removal along the last axis, float64.

    Equals the official ``filter_bandpass`` lead by lead (``*_filtered`` in the fixtures).
    """
    rec = get_recipe(recipe)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError("expected an array of samples, got a scalar")
    shape = arr.shape
    rows = np.ascontiguousarray(arr.reshape(-1, shape[-1]))
    notch, band = _coefficients(rec, float(fs))
    k = rec.median_samples(float(fs))
    pads = [3 * max(len(b), len(a)) for b, a in ([notch] if notch else []) + [band]]
    if shape[-1] <= max(pads):
        raise ValueError(
            f"signal of {shape[-1]} samples is too short for the filters (needs more than {max(pads)})"
        )
    out = np.empty_like(rows)
    n_workers = _workers(workers)
    use_numba = backend == "numba" or (backend == "auto" and numba_available())
    if use_numba:
        from ._kernels import chain_rows

        args = _numba_args(rec, float(fs), shape[-1])

        def run(chunk: np.ndarray, dst: np.ndarray) -> None:
            chain_rows(chunk, *args, dst)
    elif backend in ("auto", "scipy"):

        def run(chunk: np.ndarray, dst: np.ndarray) -> None:
            y = sps.filtfilt(*notch, chunk, axis=-1) if notch else chunk
            y = sps.filtfilt(*band, y, axis=-1)
            for i, row in enumerate(y):
                dst[i] = row - sps.medfilt(row, k) if k > 1 else row
    else:
        raise ValueError(f"unknown backend {backend!r} (auto, numba, scipy)")
    _map_rows(run, rows, out, n_workers)
    return out.reshape(shape)


def zscore(x: np.ndarray, mode: ZScore = "global", eps: float = 1e-8) -> np.ndarray:
    """``(x - mean) / (std + eps)`` over each record's whole (leads, samples) window ("global", the
    official way), each lead ("lead"), or not at all ("none"). ``x``: (..., leads, samples)."""
    if mode == "none":
        return x
    if mode == "global":
        axes: tuple[int, ...] = (-2, -1) if x.ndim >= 2 else (-1,)
    elif mode == "lead":
        axes = (-1,)
    else:
        raise ValueError(f"unknown z-score mode {mode!r} (global, lead, none)")
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    return (x - mean) / (std + eps)


def preprocess(
    x: ArrayLike,
    fs: float = 500.0,
    recipe: str | Recipe = "ecgfounder",
    *,
    mains_hz: float | None | str = "keep",
    zscore_mode: ZScore | None = None,
    dtype: type = np.float32,
    backend: Literal["auto", "numba", "scipy"] = "auto",
    workers: int | None = None,
) -> np.ndarray:
    """Apply a recipe to ``x`` of shape (samples,), (leads, samples) or (records, leads, samples).

    ``mains_hz=60`` switches the notch for 60 Hz countries (``None``: no notch); ``zscore_mode="lead"``
    normalises each lead on its own. The input must already be at ``fs`` and in mV; the model's
    contract decides both (see :func:`ecgfounder.prepare`). Returns ``dtype`` (float32 by default,
    what the model takes). Records are split over ``workers`` threads (default: all cores).
    """
    rec = get_recipe(recipe).with_options(mains_hz=mains_hz, zscore=zscore_mode)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError("expected an array of samples, got a scalar")
    use_numba = backend == "numba" or (backend == "auto" and numba_available())
    if not use_numba:
        _check_finite(arr)
        y = filter_chain(arr, fs, rec, backend=backend, workers=workers)
        return zscore(y, rec.zscore, rec.eps).astype(dtype, copy=False)

    from ._kernels import chain_rows, zscore_rows

    shape = arr.shape
    leads = shape[-2] if arr.ndim >= 2 else 1
    rows = np.ascontiguousarray(arr.reshape(-1, shape[-1]))
    args = _numba_args(rec, float(fs), shape[-1])
    mode = {"none": 0, "global": 1, "lead": 2}[rec.zscore]
    out = np.empty(rows.shape, dtype=dtype)

    step = leads * max(1, 64 // leads)  # whole records, ~64 rows: the scratch stays in cache

    def run(chunk: np.ndarray, dst: np.ndarray) -> None:
        filt = np.empty((min(step, chunk.shape[0]), chunk.shape[1]))
        for i in range(0, chunk.shape[0], step):
            part = chunk[i : i + step]
            _check_finite(part)
            buf = filt[: part.shape[0]]
            chain_rows(part, *args, buf)
            zscore_rows(buf, leads, mode, rec.eps, dst[i : i + step])

    _map_rows(run, rows, out, _workers(workers), group=leads)
    return out.reshape(shape)


def _check_finite(x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        raise ValueError(
            "signal contains NaN or infinite values; run the quality checks first "
            "(ecgfounder.check_quality repairs short gaps)"
        )


def _numba_args(rec: Recipe, fs: float, n: int) -> tuple:
    notch, band = _coefficients(rec, fs)
    empty = np.zeros(0)
    if notch:
        b1, a1 = notch[0] / notch[1][0], notch[1] / notch[1][0]
        zi1, pad1 = sps.lfilter_zi(b1, a1), 3 * max(len(b1), len(a1))
    else:
        b1 = a1 = zi1 = empty
        pad1 = 0
    b2, a2 = band[0] / band[1][0], band[1] / band[1][0]
    zi2, pad2 = sps.lfilter_zi(b2, a2), 3 * max(len(b2), len(a2))
    if n <= max(pad1, pad2):
        raise ValueError(
            f"signal of {n} samples is too short for the filters (needs more than {max(pad1, pad2)})"
        )
    return b1, a1, zi1, pad1, b2, a2, zi2, pad2, rec.median_samples(fs)


# ----------------------------------------------------------------------------------------------
# Torch (GPU) version


@lru_cache(maxsize=8)
def _filter_operator(n: int, fs: float, recipe: Recipe) -> np.ndarray:
    """The linear map of notch + band-pass ``filtfilt`` on n samples, as an (n, n) matrix M: y = x @ M."""
    return filter_chain_linear(np.eye(n), fs, recipe)


def filter_chain_linear(x: np.ndarray, fs: float, recipe: Recipe) -> np.ndarray:
    notch, band = _coefficients(recipe, fs)
    y = sps.filtfilt(*notch, x, axis=-1) if notch else x
    return sps.filtfilt(*band, y, axis=-1)


def preprocess_torch(
    x: torch.Tensor, fs: float = 500.0, recipe: str | Recipe = "ecgfounder", *, median_chunk: int = 64
) -> torch.Tensor:
    """The same recipe on a (records, leads, samples) tensor, on its device (GPU-friendly).

    The filters are linear, so both ``filtfilt`` passes (edges included) collapse into one
    (samples x samples) matrix, computed once per (length, fs, recipe) and applied as a matmul in
    float64. The running median sorts unfolded windows, ``median_chunk`` rows at a time.
    """
    import torch
    import torch.nn.functional as F

    rec = get_recipe(recipe)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    n = x.shape[-1]
    op = torch.from_numpy(np.ascontiguousarray(_filter_operator(n, float(fs), rec))).to(device=x.device)
    rows = x.reshape(-1, n).to(torch.float64)
    filt = rows @ op
    k = rec.median_samples(float(fs))
    if k > 1:
        h = k // 2
        med = torch.empty_like(filt)
        for i in range(0, filt.shape[0], median_chunk):
            part = F.pad(filt[i : i + median_chunk], (h, h))
            med[i : i + median_chunk] = part.unfold(-1, k, 1).sort(dim=-1).values[..., h]
        filt = filt - med
    y = filt.reshape(x.shape)
    if rec.zscore != "none":
        dims = (-2, -1) if rec.zscore == "global" else (-1,)
        y = (y - y.mean(dim=dims, keepdim=True)) / (y.std(dim=dims, keepdim=True, unbiased=False) + rec.eps)
    return y.to(torch.float32)
