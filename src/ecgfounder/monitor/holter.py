"""The Holter summary of a recording's beats (pure functions: beat times and classes in, numbers out).

Every figure is taken over *analysed* time only (the spans of windows not excluded); an interval
reaching into excluded time is no interval. Definitions (defaults in :class:`HolterRules`,
documented in docs/monitor.md):

- heart rate per minute: beats over the analysed seconds of that minute (minutes with at least
  30 s analysed); the lowest and highest with the clock time of their minute's start; the mean
  over the record: beats per analysed minute;
- bradycardia / tachycardia periods: stretches of at least ``min_period_s`` where the heart rate
  over the last ``hr_beats`` beats stays below ``brady_bpm`` / above ``tachy_bpm``;
- pauses: intervals between consecutive beats of at least ``pause_s``;
- ectopy: consecutive S (or V) beats form an isolated beat (1), a couplet (2) or a run (3 or more);
  counts in total and per analysed hour, the longest run and its rate;
- HRV (Task Force of the ESC and NASPE, 1996) on N-N intervals (both beats N, consecutive,
  0.3-2.0 s, within 20% of the previous N-N): SDNN, SDANN (SD of the 5-minute mean N-N), RMSSD
  (over successive N-N pairs) and pNN50 (successive differences over 50 ms, over the number of
  N-N intervals); mean N-N.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "HolterRules",
    "holter_summary",
    "clock_time",
    "hrv_time_domain",
    "ectopy_groups",
    "beats_inside",
]


@dataclass(frozen=True)
class HolterRules:
    pause_s: float = 2.0
    brady_bpm: float = 50.0
    tachy_bpm: float = 100.0
    hr_beats: int = 8
    min_period_s: float = 10.0
    listed: int = 20  # longest pauses / periods listed in the summary

    def __post_init__(self) -> None:
        if self.pause_s <= 0 or self.min_period_s < 0 or self.hr_beats < 2:
            raise ValueError("need pause_s > 0, min_period_s >= 0 and hr_beats >= 2")
        if not 0 < self.brady_bpm < self.tachy_bpm:
            raise ValueError(f"need 0 < brady_bpm < tachy_bpm (got {self.brady_bpm}, {self.tachy_bpm})")


def clock_time(seconds: float, start: str | None) -> str:
    """``HH:MM:SS`` of the moment ``seconds`` into a recording that started at ``start`` (ISO 8601
    date and time, or a time of day); without a start, the elapsed time as ``+H:MM:SS``."""
    if start:
        try:
            t0 = (
                _dt.datetime.fromisoformat(start)
                if "T" in start or "-" in start
                else _dt.datetime.combine(_dt.date(2000, 1, 1), _dt.time.fromisoformat(start))
            )
            at = t0 + _dt.timedelta(seconds=float(seconds))
            day = (at.date() - t0.date()).days
            return at.strftime("%H:%M:%S") + (f" (day {day + 1})" if day else "")
        except ValueError:
            pass
    s = int(round(seconds))
    return f"+{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def beats_inside(times_s: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Which times fall inside one of ``spans`` (K, 2) seconds."""
    return _inside(np.asarray(times_s, dtype=np.float64), _merge(spans))


def _inside(t: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Which times fall inside one of the (sorted, disjoint) ``spans`` (K, 2)."""
    if len(spans) == 0:
        return np.zeros(len(t), bool)
    k = np.searchsorted(spans[:, 0], t, side="right") - 1
    ok = k >= 0
    out = np.zeros(len(t), bool)
    out[ok] = t[ok] < spans[k[ok], 1]
    return out


def _merge(spans: np.ndarray) -> np.ndarray:
    out: list[list[float]] = []
    for a, b in sorted(map(tuple, np.asarray(spans, dtype=np.float64).reshape(-1, 2))):
        if out and a <= out[-1][1] + 1e-9:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _same_span(a: np.ndarray, b: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Whether times ``a[i]`` and ``b[i]`` lie in the same analysed span."""
    if len(spans) == 0:
        return np.zeros(len(a), bool)
    ka = np.searchsorted(spans[:, 0], a, side="right") - 1
    kb = np.searchsorted(spans[:, 0], b, side="right") - 1
    return (ka == kb) & _inside(a, spans) & _inside(b, spans)


def ectopy_groups(
    classes: np.ndarray, kind: str, contiguous: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """``(first index, length)`` of each run of consecutive ``kind`` beats; ``contiguous[i]``
    False breaks a run between beats i and i+1 (an excluded stretch)."""
    c = np.asarray(classes)
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(c):
        if c[i] != kind:
            i += 1
            continue
        j = i
        while j + 1 < len(c) and c[j + 1] == kind and (contiguous is None or contiguous[j]):
            j += 1
        out.append((i, j - i + 1))
        i = j + 1
    return out


def hrv_time_domain(times_s: np.ndarray, classes: np.ndarray, contiguous: np.ndarray | None = None) -> dict:
    """Time-domain HRV (ms) on N-N intervals; see the module. ``contiguous[i]``: beats i and i+1
    are in the same analysed stretch."""
    t = np.asarray(times_s, dtype=np.float64)
    c = np.asarray(classes)
    if len(t) < 3:
        return {
            "n_nn": 0,
            "mean_nn_ms": None,
            "sdnn_ms": None,
            "sdann_ms": None,
            "rmssd_ms": None,
            "pnn50": None,
        }
    rr = np.diff(t)
    ok = (c[:-1] == "N") & (c[1:] == "N") & (rr >= 0.3) & (rr <= 2.0)
    if contiguous is not None:
        ok &= np.asarray(contiguous, bool)[: len(rr)]
    # within 20% of the previous accepted N-N (a missed or extra beat is no N-N)
    prev = np.full(len(rr), np.nan)
    last = np.nan
    for i in np.flatnonzero(ok):
        prev[i] = last
        last = rr[i]
    ok &= ~(np.abs(rr - prev) > 0.2 * prev)
    nn = rr[ok] * 1000.0
    at = t[1:][ok]
    if len(nn) < 2:
        return {
            "n_nn": int(len(nn)),
            "mean_nn_ms": None,
            "sdnn_ms": None,
            "sdann_ms": None,
            "rmssd_ms": None,
            "pnn50": None,
        }
    # successive differences only between N-N intervals that follow each other
    idx = np.flatnonzero(ok)
    succ = np.diff(idx) == 1
    d = np.diff(nn)[succ]
    seg = np.floor(at / 300.0)
    means = [float(nn[seg == k].mean()) for k in np.unique(seg) if (seg == k).sum() >= 10]
    return {
        "n_nn": int(len(nn)),
        "mean_nn_ms": round(float(nn.mean()), 2),
        "sdnn_ms": round(float(nn.std(ddof=1)), 2),
        "sdann_ms": round(float(np.std(means, ddof=1)), 2) if len(means) >= 2 else None,
        "rmssd_ms": round(float(np.sqrt(np.mean(d * d))), 2) if len(d) else None,
        # the Task Force's pNN50: NN50 over the number of N-N intervals (as neurokit2 computes it)
        "pnn50": round(float(np.sum(np.abs(d) > 50.0) / len(nn)), 4) if len(d) else None,
    }


def _periods(
    t: np.ndarray, hr: np.ndarray, below: bool, limit: float, min_s: float, contiguous: np.ndarray
) -> list[dict[str, float]]:
    """Stretches where the running heart rate stays past ``limit`` for at least ``min_s``."""
    past = (hr < limit) if below else (hr > limit)
    past &= np.isfinite(hr)
    out = []
    i = 0
    while i < len(t):
        if not past[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(t) and past[j + 1] and contiguous[j]:
            j += 1
        if t[j] - t[i] >= min_s:
            vals = hr[i : j + 1]
            out.append(
                {
                    "start_s": round(float(t[i]), 3),
                    "end_s": round(float(t[j]), 3),
                    "duration_s": round(float(t[j] - t[i]), 3),
                    "extreme_bpm": round(float(vals.min() if below else vals.max()), 1),
                }
            )
        i = j + 1
    return out


def holter_summary(
    times_s: np.ndarray,
    classes: np.ndarray,
    analysed: np.ndarray,
    duration_s: float,
    *,
    start: str | None = None,
    rules: HolterRules = HolterRules(),
) -> dict[str, Any]:
    """The Holter summary (see the module) of beats at ``times_s`` with ``classes`` (N, S, V, Q),
    over the ``analysed`` spans (K, 2) seconds of a recording of ``duration_s``."""
    spans = _merge(np.asarray(analysed, dtype=np.float64))
    t_all = np.asarray(times_s, dtype=np.float64)
    keep = _inside(t_all, spans)
    t = t_all[keep]
    c = np.asarray(classes)[keep]
    contiguous = _same_span(t[:-1], t[1:], spans) if len(t) > 1 else np.zeros(0, bool)
    analysed_s = float((spans[:, 1] - spans[:, 0]).sum()) if len(spans) else 0.0
    hours = analysed_s / 3600.0

    def at(seconds: float) -> dict[str, Any]:
        return {"time_s": round(float(seconds), 3), "clock": clock_time(seconds, start)}

    counts = {k: int((c == k).sum()) for k in ("N", "S", "V", "Q")}
    # heart rate per minute over analysed seconds
    minutes = int(math.ceil(duration_s / 60.0)) if duration_s > 0 else 0
    per_minute: list[float | None] = []
    for m in range(minutes):
        a, b = 60.0 * m, min(60.0 * (m + 1), duration_s)
        cover = float(np.clip(np.minimum(spans[:, 1], b) - np.maximum(spans[:, 0], a), 0, None).sum())
        inside = ((t >= a) & (t < b)).sum()
        per_minute.append(round(60.0 * inside / cover, 1) if cover >= 30.0 else None)
    valid_minutes = [(i, v) for i, v in enumerate(per_minute) if v is not None]
    heart_rate: dict[str, Any] = {
        "mean_bpm": round(60.0 * len(t) / analysed_s, 1) if analysed_s > 0 and len(t) else None,
        "per_minute": per_minute,
    }
    if valid_minutes:
        lo = min(valid_minutes, key=lambda iv: iv[1])
        hi = max(valid_minutes, key=lambda iv: iv[1])
        heart_rate["min"] = {"bpm": lo[1], "minute": lo[0], **at(60.0 * lo[0])}
        heart_rate["max"] = {"bpm": hi[1], "minute": hi[0], **at(60.0 * hi[0])}
    # running heart rate over hr_beats beats (NaN across excluded stretches)
    k = max(2, rules.hr_beats)
    run_hr = np.full(len(t), np.nan)
    if len(t) > k:
        span_beats = t[k:] - t[:-k]
        unbroken = np.convolve(~contiguous, np.ones(k), mode="valid") == 0 if len(contiguous) >= k else []
        run_hr[k:] = np.where(unbroken, 60.0 * k / span_beats, np.nan)
    brady = _periods(t, run_hr, True, rules.brady_bpm, rules.min_period_s, contiguous)
    tachy = _periods(t, run_hr, False, rules.tachy_bpm, rules.min_period_s, contiguous)
    # pauses
    rr = np.diff(t)
    pause_idx = np.flatnonzero((rr >= rules.pause_s) & contiguous)
    pauses = sorted(
        ({"duration_s": round(float(rr[i]), 3), **at(t[i])} for i in pause_idx),
        key=lambda p: -p["duration_s"],
    )
    # ectopy
    ectopy: dict[str, Any] = {}
    for kind in ("S", "V"):
        groups = ectopy_groups(c, kind, contiguous)
        singles = sum(1 for _, n in groups if n == 1)
        couplets = sum(1 for _, n in groups if n == 2)
        runs = [(i, n) for i, n in groups if n >= 3]
        longest = max(runs, key=lambda g: g[1], default=None)
        entry: dict[str, Any] = {
            "total": counts[kind],
            "per_hour": round(counts[kind] / hours, 2) if hours > 0 else None,
            "isolated": singles,
            "couplets": couplets,
            "runs": len(runs),
        }
        if longest is not None:
            i, n = longest
            entry["longest_run"] = {
                "beats": n,
                "rate_bpm": round(60.0 * (n - 1) / float(t[i + n - 1] - t[i]), 1),
                **at(t[i]),
            }
        first = runs[0] if runs else (groups[0] if groups else None)
        if first is not None:
            entry["first"] = {"beats": first[1], **at(t[first[0]])}
        ectopy[kind] = entry
    return {
        "beats": {"total": int(len(t)), **counts},
        "heart_rate": heart_rate,
        "bradycardia": {
            "count": len(brady),
            "below_bpm": rules.brady_bpm,
            "periods": sorted(brady, key=lambda p: -p["duration_s"])[: rules.listed],
        },
        "tachycardia": {
            "count": len(tachy),
            "above_bpm": rules.tachy_bpm,
            "periods": sorted(tachy, key=lambda p: -p["duration_s"])[: rules.listed],
        },
        "pauses": {
            "count": len(pauses),
            "at_least_s": rules.pause_s,
            "longest": pauses[0] if pauses else None,
            "listed": pauses[: rules.listed],
        },
        "ectopy": ectopy,
        "hrv": hrv_time_domain(t, c, contiguous),
        "rules": asdict(rules),
    }
