"""LUDB's cardiologist delineation as waves, sample masks and reference global measurements.

LUDB marks, in every lead, the onset ``(``, peak (``p``, ``N``, ``t``) and offset ``)`` of each
P wave, QRS complex and T wave, over the record except its first and last beats. The reference
global intervals follow the electrocardiograph definition the measurements use: per beat the
earliest onset and the latest offset over the leads, then the median over the beats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..io.annotations import read_ludb_fiducials
from .intervals import global_beats, summarise_beats

__all__ = ["Wave", "ludb_waves", "wave_mask", "reference_measurements", "ludb_qrs_times"]

_KIND = {"p": "P", "N": "QRS", "t": "T"}


@dataclass(frozen=True)
class Wave:
    """One wave in one lead: kind (``P``, ``QRS``, ``T``), onset, peak and offset in seconds."""

    kind: str
    onset: float
    peak: float
    offset: float


def ludb_waves(record: str | os.PathLike[str]) -> dict[str, list[Wave]]:
    """``{lead: [Wave, ...]}`` from a LUDB record's annotation files."""
    out: dict[str, list[Wave]] = {}
    for lead, marks in read_ludb_fiducials(record).items():
        waves = []
        for (t0, a), (t1, b), (t2, c) in zip(marks, marks[1:], marks[2:]):
            if a == "(" and c == ")" and b in _KIND and t0 <= t1 <= t2:
                waves.append(Wave(_KIND[b], t0, t1, t2))
        out[lead] = waves
    return out


def ludb_qrs_times(record: str | os.PathLike[str]) -> tuple[np.ndarray, tuple[float, float]]:
    """The record's QRS complexes (s) as one beat list, and the span the annotation covers.

    Each lead is marked on its own and some leads leave beats unmarked; a beat is the median QRS
    peak of the marks of all leads lying within 150 ms of its first mark. The span runs from the
    first marked wave's onset to the last one's offset: outside it, beats are not marked."""
    waves = [w for ws in ludb_waves(record).values() for w in ws]
    peaks = np.sort([w.peak for w in waves if w.kind == "QRS"])
    if len(waves) == 0 or len(peaks) == 0:
        return np.zeros(0), (0.0, 0.0)
    groups: list[list[float]] = [[float(peaks[0])]]
    for t in peaks[1:]:
        if t - groups[-1][0] < 0.15:
            groups[-1].append(float(t))
        else:
            groups.append([float(t)])
    span = (min(w.onset for w in waves), max(w.offset for w in waves))
    return np.array([float(np.median(g)) for g in groups]), span


def wave_mask(waves: list[Wave], n: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample class (0 none, 1 P, 2 QRS, 3 T) and the mask of samples the annotation covers
    (from the first wave's onset to the last wave's offset: LUDB leaves the ends unmarked)."""
    cls = np.zeros(n, dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    if not waves:
        return cls, known
    codes = {"P": 1, "QRS": 2, "T": 3}
    for w in waves:
        a, b = int(round(w.onset * fs)), int(round(w.offset * fs)) + 1
        cls[max(0, a) : min(n, b)] = codes[w.kind]
    a = int(round(min(w.onset for w in waves) * fs))
    b = int(round(max(w.offset for w in waves) * fs)) + 1
    known[max(0, a) : min(n, b)] = True
    return cls, known


def reference_measurements(waves: dict[str, list[Wave]]) -> dict[str, float]:
    """Reference ``hr_bpm``, ``rr_ms``, ``p_ms``, ``pr_ms``, ``qrs_ms``, ``qt_ms`` of a record from
    the cardiologists' per-lead waves: global beats by the electrocardiograph definition (earliest
    onset, latest offset over the leads marking the wave, at least 3), medians over the beats;
    NaN where fewer than 2 beats have the wave (no P waves in AF)."""
    return summarise_beats(global_beats(waves, agree=1, min_leads=3))
