"""From a read record to model input: quality, leads, rate, windows, recipe, padding.

This is the one place where a model's :class:`~ecgfounder.contract.InputContract` turns into
array operations, so that a model is never fed other leads, another rate, another length or
another normalisation than it was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..contract import InputContract
from ..errors import ContractError, ECGInputError
from ..io.leads import select_leads
from ..io.record import ECGRecord
from .model_recipes import get_model_recipe, is_model_recipe
from .preprocess import get_recipe, preprocess
from .quality import QualityThresholds, check_quality
from .resample import resample
from .window import window_starts

__all__ = ["PreparedECG", "prepare", "prepare_windows"]


@dataclass
class PreparedECG:
    """Model-ready windows of one record.

    ``windows``: float32 (W, leads, n_samples), preprocessed; ``starts_s``: where each window starts
    in the recording (seconds); ``valid_samples``: how many samples of each window are signal (the
    rest is padding); ``record``: the record after lead selection and resampling, with its notes
    and quality flags.
    """

    windows: np.ndarray
    starts_s: list[float]
    valid_samples: list[int]
    record: ECGRecord
    contract: InputContract
    recipe: str
    notes: list[str] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        return self.record.flags


def prepare(
    record: ECGRecord,
    contract: InputContract | None = None,
    *,
    lead: str | None = None,
    derive: bool = True,
    stride_s: float | None = None,
    mains_hz: float | None | str = "keep",
    zscore_mode: str | None = None,
    quality: QualityThresholds = QualityThresholds(),
    backend: str = "auto",
    workers: int | None = 1,
) -> PreparedECG:
    """Everything between :func:`~ecgfounder.read_ecg` and the model, driven by ``contract``.

    1. quality checks (flags; short NaN gaps repaired; unusable records raise),
    2. leads selected and ordered as the contract says (limb leads derived from I and II if asked;
       ``lead`` picks the channel for a single-lead model),
    3. units must be mV (readers convert), resampled to the contract's rate (polyphase),
    4. cut into windows of the contract's length every ``stride_s`` (default: the window, no
       overlap; the last window is aligned to the end of the record),
    5. each window preprocessed with the contract's recipe, exactly as the official code does;
    6. a record shorter than one window is preprocessed as it is and then zero-padded at the end
       to the window length; after the z-score, zero is the signal mean, so the padding is
       neutral. ``valid_samples`` records how much is signal.
    """
    contract = contract or InputContract()
    if contract.units != "mV":
        raise ContractError(f"contract units {contract.units!r} are not supported (records are in mV)")
    rec = check_quality(record, quality, window_s=contract.duration_s)
    rec = select_leads(rec, contract.leads, derive=derive, lead=lead)
    if is_model_recipe(contract.preprocessing):
        return _prepare_model_recipe(rec, record.name, contract, stride_s)
    notes: list[str] = []
    if rec.fs != contract.fs:
        signal = resample(rec.signal, rec.fs, contract.fs)
        notes.append(f"resampled {rec.fs:g} -> {contract.fs:g} Hz")
        rec = rec.replace(signal=signal, fs=contract.fs)
        rec.notes.extend(notes)
    n = contract.n_samples
    stride = None if stride_s is None else max(1, int(round(stride_s * contract.fs)))
    starts = window_starts(rec.n_samples, n, stride)
    try:
        processed, valid = prepare_windows(
            rec.signal,
            contract,
            starts,
            mains_hz=mains_hz,
            zscore_mode=zscore_mode,
            backend=backend,
            workers=workers,
        )
    except ValueError as exc:
        raise ECGInputError(record.name, f"cannot preprocess: {exc}") from None
    if valid[0] < n:
        rec.notes.append(
            f"zero-padded {n - valid[0]} samples at the end after normalisation "
            f"({rec.duration_s:.2f} s < {contract.duration_s:g} s)"
        )
    return PreparedECG(
        windows=processed,
        starts_s=[s / contract.fs for s in starts],
        valid_samples=valid,
        record=rec,
        contract=contract,
        recipe=get_recipe(contract.preprocessing).name,
        notes=notes,
    )


def prepare_windows(
    signal: np.ndarray,
    contract: InputContract,
    starts: Sequence[int],
    *,
    mains_hz: float | None | str = "keep",
    zscore_mode: str | None = None,
    backend: str = "auto",
    workers: int | None = 1,
) -> tuple[np.ndarray, list[int]]:
    """The windows of ``signal`` (leads in the contract's order, at its rate, mV) that start at
    ``starts`` (samples), each preprocessed with the contract's recipe: ``(float32 (W, leads,
    n_samples), signal samples per window)``. The one padding rule, for :func:`prepare` and
    :func:`ecgfounder.monitor.monitor` alike: a window that runs past the end of ``signal`` is
    preprocessed as it is and zero-padded at the end afterwards (after the z-score zero is the
    signal mean, so the padding is neutral). Raises ``ValueError`` when the recipe cannot run
    (a window too short to filter)."""
    n = contract.n_samples
    recipe = get_recipe(contract.preprocessing)
    out = np.zeros((len(starts), signal.shape[0], n), dtype=np.float32)
    valid = [max(0, min(n, signal.shape[-1] - s)) for s in starts]
    full = [i for i, v in enumerate(valid) if v == n]
    kw = dict(mains_hz=mains_hz, zscore_mode=zscore_mode, backend=backend, workers=workers)
    if full:
        batch = np.stack([signal[:, starts[i] : starts[i] + n] for i in full])
        out[full] = preprocess(batch, contract.fs, recipe, **kw)  # type: ignore[arg-type]
    for i in (i for i, v in enumerate(valid) if 0 < v < n):
        out[i, :, : valid[i]] = preprocess(signal[None, :, starts[i] :], contract.fs, recipe, **kw)[0]  # type: ignore[arg-type]
    return out, valid


def _prepare_model_recipe(
    rec: ECGRecord, name: str, contract: InputContract, stride_s: float | None
) -> PreparedECG:
    """Another foundation model's preparation (:mod:`ecgfounder.signal.model_recipes`): its record
    step on the whole recording (or on each of upstream's pieces) at the recording's rate, then
    its window step on each window cut at the recipe's working rate; windows never straddle two
    pieces. A piece shorter than a window is zero-padded after the record step, and says so."""
    recipe = get_model_recipe(contract.preprocessing)
    if (recipe.out_rate, recipe.out_samples) != (contract.fs, contract.n_samples):
        raise ContractError(
            f"recipe {recipe.name!r} gives {recipe.out_samples} samples at {recipe.out_rate:g} Hz, the "
            f"contract asks for {contract.n_samples} at {contract.fs:g} Hz"
        )
    if rec.n_samples < recipe.min_samples(rec.fs):
        raise ECGInputError(
            name,
            f"{rec.duration_s:.2f} s is too short for the {recipe.name!r} recipe's filters "
            f"(at least {recipe.min_samples(rec.fs)} samples at {rec.fs:g} Hz)",
        )
    notes = [f"{recipe.name} recipe: recording prepared at {recipe.rate:g} Hz (from {rec.fs:g} Hz)"]
    piece = rec.n_samples if recipe.piece_s is None else max(1, int(round(recipe.piece_s * rec.fs)))
    n = recipe.window
    stride = None if stride_s is None else max(1, int(round(stride_s * recipe.rate)))
    windows: list[np.ndarray] = []
    starts_s: list[float] = []
    valid: list[int] = []
    ratio = recipe.out_rate / recipe.rate
    for p0 in range(0, rec.n_samples, piece):
        part = rec.signal[:, p0 : p0 + piece]
        if p0 and part.shape[-1] < recipe.min_samples(rec.fs):
            notes.append(f"last {part.shape[-1] / rec.fs:.2f} s too short for the filters: not scored")
            break
        try:
            work = recipe.prepare_record(part, rec.fs)
        except ValueError as exc:
            raise ECGInputError(name, f"cannot preprocess with {recipe.name!r}: {exc}") from None
        length = work.shape[-1]
        if length < n:
            work = np.pad(work, ((0, 0), (0, n - length)))
            notes.append(f"zero-padded {n - length} samples at {recipe.rate:g} Hz to one window")
        for s in window_starts(work.shape[-1], n, stride):
            windows.append(recipe.prepare_window(work[:, s : s + n]))
            starts_s.append(p0 / rec.fs + s / recipe.rate)
            valid.append(int(round(max(0, min(n, length - s)) * ratio)))
    if recipe.piece_s is not None and rec.n_samples > piece:
        notes.append(f"prepared in {recipe.piece_s:g} s pieces, as upstream cuts recordings")
    out = rec.replace()  # the record as read (its own rate, mV); the windows carry the recipe
    out.notes.extend(notes)
    return PreparedECG(
        windows=np.stack(windows).astype(np.float32),
        starts_s=starts_s,
        valid_samples=valid,
        record=out,
        contract=contract,
        recipe=recipe.name,
        notes=notes,
    )
