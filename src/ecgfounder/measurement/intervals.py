"""From per-lead waves to global beats and record measurements, as electrocardiographs define them.

A beat is a QRS complex seen in several leads (peaks within 150 ms). Per beat, the global QRS onset
is the earliest onset over the leads and the offset the latest (``agree=1``, the IEC definition);
``agree=k`` takes the k-th earliest / latest instead, so one lead's stray mark cannot stretch a
beat. The P wave of a lead is the one ending before its QRS and starting at most 450 ms before;
the T wave the first starting after the QRS and ending within 800 ms of its onset. Record values
are the medians over the beats that have the wave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["GlobalBeat", "global_beats", "summarise_beats"]


@dataclass(frozen=True)
class GlobalBeat:
    """One beat's global fiducials in seconds (NaN where the wave was not found in enough leads)
    and the leads that contributed."""

    qrs_peak: float
    qrs_onset: float
    qrs_offset: float
    p_onset: float
    p_offset: float
    t_offset: float
    n_leads: int
    n_p_leads: int


def _kth(values: Sequence[float], k: int, latest: bool) -> float:
    v = np.sort(np.asarray(values, dtype=np.float64))
    if len(v) == 0:
        return float("nan")
    k = min(k, len(v))
    return float(v[-k] if latest else v[k - 1])


def global_beats(waves: Mapping[str, Sequence], *, agree: int = 1, min_leads: int = 3) -> list[GlobalBeat]:
    """Global beats from ``{lead: [wave, ...]}`` (objects with ``kind``, ``onset``, ``peak``,
    ``offset`` in seconds); a wave needs ``min_leads`` leads (fewer leads than that in the record:
    all of them)."""
    need = min(min_leads, max(1, len(waves)))
    peaks = sorted(w.peak for ws in waves.values() for w in ws if w.kind == "QRS")
    clusters: list[list[float]] = []
    for t in peaks:
        if clusters and t - clusters[-1][-1] <= 0.15:
            clusters[-1].append(t)
        else:
            clusters.append([t])
    beats = []
    for cluster in clusters:
        if len(cluster) < need:
            continue
        c = float(np.median(cluster))
        q_on, q_off, p_on, p_off, t_off = [], [], [], [], []
        for ws in waves.values():
            q = [w for w in ws if w.kind == "QRS" and abs(w.peak - c) <= 0.15]
            if not q:
                continue
            qrs = min(q, key=lambda w: abs(w.peak - c))
            q_on.append(qrs.onset)
            q_off.append(qrs.offset)
            p = [
                w for w in ws if w.kind == "P" and w.offset <= qrs.onset + 0.01 and qrs.onset - w.onset < 0.45
            ]
            if p:
                p_on.append(p[-1].onset)
                p_off.append(p[-1].offset)
            t = [
                w for w in ws if w.kind == "T" and w.onset >= qrs.offset - 0.02 and w.offset - qrs.onset < 0.8
            ]
            if t:
                t_off.append(t[0].offset)
        if len(q_on) < need:
            continue
        nan = float("nan")
        has_p, has_t = len(p_on) >= need, len(t_off) >= need
        beats.append(
            GlobalBeat(
                qrs_peak=c,
                qrs_onset=_kth(q_on, agree, False),
                qrs_offset=_kth(q_off, agree, True),
                p_onset=_kth(p_on, agree, False) if has_p else nan,
                p_offset=_kth(p_off, agree, True) if has_p else nan,
                t_offset=_kth(t_off, agree, True) if has_t else nan,
                n_leads=len(q_on),
                n_p_leads=len(p_on),
            )
        )
    return beats


def summarise_beats(beats: Sequence[GlobalBeat], min_beats: int = 2) -> dict[str, float]:
    """``hr_bpm``, ``rr_ms`` (mean RR), ``p_ms``, ``pr_ms``, ``qrs_ms``, ``qt_ms`` (medians over the
    beats having the wave; NaN with fewer than ``min_beats``), ``p_fraction`` (share of beats with
    a P wave) and ``rr_cv`` (RR standard deviation / mean)."""

    def med(values: list[float]) -> float:
        v = [x for x in values if np.isfinite(x)]
        return float(np.median(v) * 1000) if len(v) >= min_beats else float("nan")

    out = {
        "p_ms": med([b.p_offset - b.p_onset for b in beats]),
        "pr_ms": med([b.qrs_onset - b.p_onset for b in beats]),
        "qrs_ms": med([b.qrs_offset - b.qrs_onset for b in beats]),
        "qt_ms": med([b.t_offset - b.qrs_onset for b in beats]),
    }
    rr = np.diff([b.qrs_peak for b in beats])
    out["rr_ms"] = float(rr.mean() * 1000) if len(rr) else float("nan")
    out["hr_bpm"] = 60000.0 / out["rr_ms"] if len(rr) else float("nan")
    out["rr_cv"] = float(rr.std() / rr.mean()) if len(rr) >= 2 else float("nan")
    out["p_fraction"] = float(np.mean([np.isfinite(b.p_onset) for b in beats])) if beats else float("nan")
    return out
