"""``measure(record)``: heart rate, PR, QRS, QT, QTc and the P/QRS/T axes of a resting ECG.

Steps: per-lead delineation (:func:`~ecgfounder.measurement.delineate.delineate`), global beats (earliest
onset, latest offset over the leads: :mod:`~ecgfounder.measurement.intervals`), medians over the beats.
Axes from the net areas of each wave in leads I and aVF (aVF derived from I and II when absent),
summed over the beats, as ``atan2(aVF, I)`` in degrees. A value that cannot mean anything is NaN
with a flag saying why, never a number:

- ``no_p_waves``: P waves in fewer than half the beats, or in fewer than 90% with an irregular
  rhythm (RR coefficient of variation above 0.08: atrial fibrillation), as in atrial fibrillation,
  flutter, junctional or paced rhythms: no P duration, PR or P axis;
- ``paced``: pacemaker spikes before the QRS complexes: no PR (the spike drives the ventricles);
- ``noisy``: noise or motion flagged in more than half the leads: intervals left out;
- ``few_beats``: fewer than two beats found: nothing measured;
- ``no_t_end``: T-wave ends found in fewer than two beats: no QT/QTc;
- ``no_axes``: leads I and aVF (or I and II) are not in the record;
- ``first_60s``: the record is longer than a minute; the first minute was measured (resting-ECG
  measurements; long recordings are what ``ecgfounder monitor`` is for).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..io.record import ECGRecord
from .intervals import GlobalBeat, global_beats, summarise_beats
from .reference import Wave

__all__ = [
    "Measurements",
    "measure",
    "measure_row",
    "measure_inputs",
    "measurements_line",
    "shift_beats",
    "MEASURE_COLUMNS",
    "FIDUCIALS",
]

#: the columns ``predict --measure`` adds, in order
MEASURE_COLUMNS = (
    "hr_bpm",
    "rr_ms",
    "p_ms",
    "pr_ms",
    "qrs_ms",
    "qt_ms",
    "qtc_bazett_ms",
    "qtc_fridericia_ms",
    "p_axis_deg",
    "qrs_axis_deg",
    "t_axis_deg",
    "measure_flags",
)


@dataclass
class Measurements:
    """A record's measurements (NaN where not measurable; ``flags`` say why), the global beats
    they come from, and the per-lead waves (fiducials in seconds from the record start)."""

    hr_bpm: float
    rr_ms: float
    p_ms: float
    pr_ms: float
    qrs_ms: float
    qt_ms: float
    qtc_bazett_ms: float
    qtc_fridericia_ms: float
    p_axis_deg: float
    qrs_axis_deg: float
    t_axis_deg: float
    flags: list[str] = field(default_factory=list)
    beats: list[GlobalBeat] = field(default_factory=list, repr=False)
    waves: dict[str, list[Wave]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The values of :data:`MEASURE_COLUMNS` (flags joined by ``;``)."""
        # to 0.1 ms, bpm and degree: finer than a 500 Hz sample (2 ms), without float noise
        # (147.9999999999997)
        out: dict[str, Any] = {k: _round(getattr(self, k), 1) for k in MEASURE_COLUMNS[:-1]}
        out["measure_flags"] = ";".join(self.flags)
        return out

    def beats_frame(self) -> Any:
        """Per-beat global fiducials as a DataFrame (seconds)."""
        import pandas as pd

        return pd.DataFrame([b.__dict__ for b in self.beats])

    def summary_line(self) -> str:
        """One line as printed ECGs show it:
        ``HR 72 bpm  PR 160 ms  QRS 92 ms  QT/QTcB 380/410 ms  P/QRS/T axis 50/30/40°``."""
        return measurements_line(self.to_dict())


def _round(value: Any, digits: int) -> Any:
    """``value`` rounded (NaN and None stay as they are)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return value
    return round(v, digits) if np.isfinite(v) else v


def measurements_line(values: dict[str, Any]) -> str:
    """The header line of a printed ECG from measurement values (``--`` where not measured)."""

    def v(key: str) -> str:
        x = values.get(key)
        return "--" if x is None or not np.isfinite(x) else f"{x:.0f}"

    line = (
        f"HR {v('hr_bpm')} bpm  PR {v('pr_ms')} ms  QRS {v('qrs_ms')} ms  "
        f"QT/QTcB {v('qt_ms')}/{v('qtc_bazett_ms')} ms  "
        f"P/QRS/T axis {v('p_axis_deg')}/{v('qrs_axis_deg')}/{v('t_axis_deg')}°"
    )
    flags = values.get("measure_flags")
    return line + (f"  ({flags.replace(';', ', ')})" if flags else "")


def _axis_leads(signal: np.ndarray, leads: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    pos = {lead: i for i, lead in enumerate(leads)}
    if "I" not in pos:
        return None
    i = signal[pos["I"]]
    if "aVF" in pos:
        return i, signal[pos["aVF"]]
    if "II" in pos:
        return i, signal[pos["II"]] - i / 2
    return None


def _axes(
    beats: Sequence[GlobalBeat], signal: np.ndarray, fs: float, leads: Sequence[str]
) -> tuple[float, float, float] | None:
    from scipy.signal import butter, sosfiltfilt

    pair = _axis_leads(signal, leads)
    if pair is None:
        return None
    band = sosfiltfilt(
        butter(
            2, [0.5, 40.0] if fs > 90 else 0.5, "bandpass" if fs > 90 else "highpass", fs=fs, output="sos"
        ),
        np.stack(pair).astype(np.float64),
        axis=-1,
    )
    n = band.shape[-1]

    def area(a: float, b: float, base: np.ndarray) -> np.ndarray | None:
        if not (np.isfinite(a) and np.isfinite(b)):
            return None
        ia, ib = int(round(a * fs)), int(round(b * fs)) + 1
        if ia < 0 or ib > n or ib - ia < 2:
            return None
        return (band[:, ia:ib] - base[:, None]).sum(-1) / fs

    sums = {"p": np.zeros(2), "qrs": np.zeros(2), "t": np.zeros(2)}
    counts = {"p": 0, "qrs": 0, "t": 0}
    for b in beats:
        on = int(round(b.qrs_onset * fs))
        if on < int(0.02 * fs):
            continue
        base = band[:, on - int(0.02 * fs) : on].mean(-1)  # the PR segment just before the QRS
        for key, (a, z) in {
            "p": (b.p_onset, b.p_offset),
            "qrs": (b.qrs_onset, b.qrs_offset),
            "t": (b.qrs_offset, b.t_offset),
        }.items():
            got = area(a, z, base)
            if got is not None:
                sums[key] += got
                counts[key] += 1

    def angle(key: str) -> float:
        if counts[key] < 2 or not np.any(sums[key]):
            return float("nan")
        return float(math.degrees(math.atan2(sums[key][1], sums[key][0])))

    return angle("p"), angle("qrs"), angle("t")


def _paced(signal: np.ndarray, fs: float, beats: Sequence[GlobalBeat]) -> bool:
    """Pacemaker spikes: a steep deflection (> 0.25 mV within 4 ms) in the 100 ms before the QRS
    onset in half the beats or more, in any lead. Needs a rate of 250 Hz or more."""
    if fs < 250 or len(beats) < 2:
        return False
    x = np.asarray(signal, dtype=np.float64)
    step = max(1, int(round(0.004 * fs)))
    slope = np.abs(x[:, step:] - x[:, :-step])
    hits = 0
    for b in beats:
        a, z = int(round((b.qrs_onset - 0.1) * fs)), int(round((b.qrs_onset + 0.01) * fs))
        if a < 0 or z >= slope.shape[-1]:
            continue
        window = slope[:, a:z]
        if window.size and window.max() > 0.25:
            hits += 1
    return hits >= max(2, len(beats) // 2)


#: longer records are measured on their first minute
MAX_SECONDS = 60.0
#: global fiducials a calibration may shift (ms, added to the delineator's value)
FIDUCIALS = ("p_onset", "p_offset", "qrs_onset", "qrs_offset", "t_offset")


def shift_beats(beats: Sequence[GlobalBeat], shifts_ms: Mapping[str, float]) -> list[GlobalBeat]:
    """Beats with each fiducial moved by ``shifts_ms[name]`` milliseconds (a calibration)."""
    return [
        replace(b, **{k: getattr(b, k) + float(shifts_ms.get(k, 0.0)) / 1000 for k in FIDUCIALS})
        for b in beats
    ]


def measure(
    record: ECGRecord | str | os.PathLike[str],
    *,
    method: str = "unet",
    agree: int = 1,
    model: Any = None,
    probabilities: np.ndarray | None = None,
    shifts_ms: Mapping[str, float] | None = None,
) -> Measurements:
    """Measurements of one record (an :class:`~ecgfounder.io.record.ECGRecord` or a file
    :func:`~ecgfounder.read_ecg` reads). ``method``: ``unet`` (bundled LUDB-trained delineator,
    default) or ``neurokit``; ``agree``: the k-th earliest onset / latest offset over the leads
    makes the global one (1: the electrocardiograph definition). ``shifts_ms``: a calibration of
    the global fiducials (default: the one stored with the delineator, estimated out-of-fold on
    LUDB; ``{}`` for none)."""
    from ..signal.artifacts import artifact_flags
    from .delineate import delineate, load_delineator

    if not isinstance(record, ECGRecord):
        from ..io import read_ecg

        record = read_ecg(record)
    if record.duration_s < 2.0 or record.n_samples < 64:
        from ..errors import ECGInputError

        raise ECGInputError(
            record.name, f"{record.duration_s:.2f} s is too short to measure (2 s and two beats needed)"
        )
    flags: list[str] = []
    if record.duration_s > MAX_SECONDS and probabilities is None:
        record = record.replace(signal=record.signal[:, : int(round(MAX_SECONDS * record.fs))])
        flags.append("first_60s")
    sig = np.nan_to_num(np.asarray(record.signal, dtype=np.float64))
    leads = list(record.leads)
    if method == "unet" and model is None and probabilities is None:
        model = load_delineator()
    if shifts_ms is None:
        shifts_ms = (
            dict(getattr(model, "provenance", {}).get("fiducial_shifts_ms", {})) if method == "unet" else {}
        )
    waves = delineate(sig, record.fs, leads, method=method, model=model, probabilities=probabilities)
    beats = global_beats(waves, agree=agree, min_leads=3)
    if shifts_ms:
        beats = shift_beats(beats, shifts_ms)
    s = summarise_beats(beats)
    nan = float("nan")
    if len(beats) < 2:
        flags.append("few_beats")
        s = {k: nan for k in s}
    quality = artifact_flags(sig, record.fs, leads)
    noisy_leads = {f.split(":", 1)[1] for f in quality if f.startswith(("noise:", "motion_artifact:"))}
    noisy = len(noisy_leads) > len(leads) / 2
    if noisy:
        flags.append("noisy")
        for k in ("p_ms", "pr_ms", "qrs_ms", "qt_ms"):
            s[k] = nan
    irregular = np.isfinite(s["rr_cv"]) and s["rr_cv"] > 0.08
    if "few_beats" not in flags and (s["p_fraction"] < 0.5 or (irregular and s["p_fraction"] < 0.9)):
        flags.append("no_p_waves")
        s["p_ms"] = s["pr_ms"] = nan
    if _paced(sig, record.fs, beats):
        flags.append("paced")
        s["pr_ms"] = nan
    if "few_beats" not in flags and not noisy and not np.isfinite(s["qt_ms"]):
        flags.append("no_t_end")
    rr = s["rr_ms"] / 1000 if np.isfinite(s["rr_ms"]) else nan
    qt = s["qt_ms"]
    axes = _axes(beats, sig, record.fs, leads) if len(beats) >= 2 else None
    if axes is None:
        axes = (nan, nan, nan)
        if len(beats) >= 2:
            flags.append("no_axes")
    p_axis = axes[0] if "no_p_waves" not in flags else nan
    return Measurements(
        hr_bpm=s["hr_bpm"],
        rr_ms=s["rr_ms"],
        p_ms=s["p_ms"],
        pr_ms=s["pr_ms"],
        qrs_ms=s["qrs_ms"],
        qt_ms=qt,
        qtc_bazett_ms=qt / math.sqrt(rr) if np.isfinite(qt) and np.isfinite(rr) else nan,
        qtc_fridericia_ms=qt / rr ** (1 / 3) if np.isfinite(qt) and np.isfinite(rr) else nan,
        p_axis_deg=p_axis,
        qrs_axis_deg=axes[1],
        t_axis_deg=axes[2],
        flags=flags,
        beats=beats,
        waves=waves,
    )


def measure_row(record: ECGRecord) -> dict[str, Any]:
    """The :data:`MEASURE_COLUMNS` of a record; a record that cannot be measured gets NaN values
    and the reason in ``measure_flags`` (never an exception: a batch goes on)."""
    from ..errors import ECGFounderError

    try:
        return measure(record).to_dict()
    except (ECGFounderError, ValueError, IndexError) as exc:
        return {**{k: float("nan") for k in MEASURE_COLUMNS[:-1]}, "measure_flags": f"not_measured: {exc}"}


def measure_inputs(
    inputs: Sequence[str | os.PathLike[str]], *, method: str = "unet", agree: int = 1, **read_kwargs: Any
) -> Any:
    """Rows ``{record, n_beats, <MEASURE_COLUMNS>, error}`` for every input (files, folders,
    globs, manifests, as ``predict`` takes them), one at a time; a file that cannot be read gets
    ``error`` and the rest go on."""
    from ..errors import ECGFounderError
    from ..io import expand_inputs, read_ecg

    for src in expand_inputs(inputs):
        try:
            rec = read_ecg(src.path, index=src.index or 0, **read_kwargs)
            m = measure(rec, method=method, agree=agree)
            yield {"record": src.key, "n_beats": len(m.beats), **m.to_dict(), "error": ""}
        except (ECGFounderError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            yield {
                "record": src.key,
                "n_beats": 0,
                **{k: float("nan") for k in MEASURE_COLUMNS[:-1]},
                "measure_flags": "",
                "error": reason,
            }
