"""``monitor``: a long recording (Holter, patch, watch) in, windows, episodes, burden and heart rate out.

The recording is read span by span (:func:`~ecgfounder.io.chunks.open_long`), so memory does not
grow with its length. Windows of the model's length start every ``stride_s`` seconds; each is
checked (gaps, a flat lead, implausible amplitude), preprocessed with the model's recipe and
scored by the :class:`~ecgfounder.Predictor`'s backend. A model label meaning noise (``noisy``)
at or above 0.5 also excludes its window. Excluded windows are reported with their reason and
never counted as normal. Episodes and burden: :mod:`.episodes`. Heart rate: R peaks from
``wfdb.processing.gqrs_detect`` on the analysed lead, per window (median RR) and per minute, with
the RR coefficient of variation per window as a model-free second opinion on AF.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGFounderError
from ..io.chunks import open_long
from ..io.leads import select_leads
from ..resampling import resample
from ..signal.pipeline import prepare_windows
from ..signal.quality import window_quality
from ..signal.window import window_starts
from .episodes import Episode, EpisodeRules, burden, expected_burden, find_episodes, fuse_rr, owned_spans

__all__ = ["monitor", "MonitorResult", "window_starts_s"]

_NOISE_LABELS = ("noisy", "noise", "artifact", "artefact")


@dataclass
class MonitorResult:
    windows: Any  # DataFrame: start_s, end_s, a column per label, quality, hr_bpm, rr_cv
    episodes: list[Episode]
    summary: dict[str, Any]
    out_dir: Path | None = None


def window_starts_s(duration_s: float, window_s: float, stride_s: float) -> np.ndarray:
    """Window starts (s) every ``stride_s``, the last aligned to the end: the Predictor's
    :func:`~ecgfounder.signal.window.window_starts`, counted in milliseconds."""
    ms = 1000.0
    starts = window_starts(int(round(duration_s * ms)), int(round(window_s * ms)), int(round(stride_s * ms)))
    return np.asarray(starts, dtype=np.float64) / ms


def _artifacts(w: np.ndarray, fs: float, leads: Any) -> str:
    """``noisy (signal: ...)`` where the window's own signal shows broadband/muscle noise or a
    motion burst (:mod:`ecgfounder.signal.artifacts`), so excluding noise never rests on the model alone."""
    from ..signal.artifacts import artifact_flags

    found = [
        f.split(":")[0]
        for f in artifact_flags(w, fs, list(leads))
        if f.startswith(("noise:", "motion_artifact:"))
    ]
    return f"noisy (signal: {', '.join(sorted(set(found)))})" if found else "ok"


def _release_memory() -> None:
    """Collect the detector's reference cycles and hand freed heap back to the system (glibc).

    ``gqrs_detect`` builds cyclic Python objects per call; left to the collector's schedule and the
    allocator, a 24 h record grew the process to 3 GB. Collected after every chunk, it stays flat."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    import contextlib
    import io

    from wfdb.processing import gqrs_detect

    if len(x) < fs * 2 or not np.isfinite(x).all() or np.ptp(x) < 0.01:
        return np.zeros(0, dtype=np.int64)
    with contextlib.redirect_stdout(io.StringIO()):
        return np.asarray(gqrs_detect(sig=np.asarray(x, dtype=np.float64), fs=fs), dtype=np.int64)


@dataclass
class _Scan:
    """What one pass over the recording gives: per window its probabilities (NaN where not scored)
    and quality, and the R peaks (s) found span by span."""

    starts: np.ndarray
    probs: np.ndarray
    quality: np.ndarray
    peaks: list[np.ndarray]


def monitor(
    source: str | os.PathLike[str],
    model: Any = None,
    *,
    lead: str | None = None,
    stride_s: float = 5.0,
    chunk_s: float = 600.0,
    rules: EpisodeRules = EpisodeRules(),
    labels: list[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    batch_size: int = 64,
    heart_rate: bool = True,
    report: bool = True,
) -> MonitorResult:
    """Analyse a recording of any length; see the module. ``model``: a name, file or loaded model
    (default: the released single-lead ECGFounder, or the 12-lead one for 12-lead files);
    ``labels``: the labels episodes are drawn for (default: all but normal and noise labels);
    ``out_dir``: where ``windows.csv``, ``episodes.csv``, ``summary.json`` and (``report``)
    ``report.pdf`` are written."""
    from ..infer import Predictor
    from ..infer.runs import suggest_model

    if stride_s <= 0 or chunk_s <= 0:
        raise ValueError("stride_s and chunk_s must be positive")
    long = open_long(source)
    if model is None:
        model, _ = suggest_model([str(source)])
    predictor = Predictor(model, workers=0, progress=False, batch_size=batch_size)
    names = list(predictor.labels)
    chosen = _chosen_labels(names, labels)
    contract = predictor.contract
    # the model's leads must be in the record: said now, not as every window failing
    select_leads(
        long.read(0, min(long.n_samples, int(long.fs * contract.duration_s))), contract.leads, lead=lead
    )

    scan = _read_and_score(
        long,
        predictor,
        lead=lead,
        stride_s=stride_s,
        chunk_s=chunk_s,
        heart_rate=heart_rate,
        progress=progress,
    )
    _exclude_model_noise(scan, names)
    window_s, duration = contract.duration_s, long.duration_s
    valid = scan.quality == "ok"
    spans = owned_spans(scan.starts, window_s, stride_s, duration)
    all_peaks = np.concatenate(scan.peaks) if scan.peaks else np.zeros(0)
    hr, rr_cv = _window_rhythm(all_peaks, scan.starts, window_s)
    episodes: list[Episode] = []
    for label in chosen:
        score = fuse_rr(label, scan.probs[:, names.index(label)], rr_cv, rules)
        episodes += find_episodes(label, spans, score, valid, rules)
    episodes.sort(key=lambda e: (e.start_s, e.label))
    table = _window_table(scan, names, window_s, duration, hr, rr_cv)
    summary = _summary(
        source,
        predictor.model_name,
        long,
        scan,
        names,
        chosen,
        episodes,
        spans,
        all_peaks,
        window_s,
        stride_s,
        rules,
    )
    out = _write(out_dir, table, episodes, summary)
    result = MonitorResult(table, episodes, summary, out)
    if out is not None and report:
        from .report import write_report

        write_report(result, long, out / "report.pdf", lead=lead)
    return result


def _chosen_labels(names: list[str], labels: list[str] | None) -> list[str]:
    """The labels episodes are drawn for; an unknown one is an error."""
    chosen = (
        labels
        if labels is not None
        else [n for n in names if n.lower() not in _NOISE_LABELS and "normal" not in n.lower()]
    )
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise ECGFounderError(f"labels not in the model: {', '.join(unknown)}")
    return chosen


def _read_and_score(
    long: Any,
    predictor: Any,
    *,
    lead: str | None,
    stride_s: float,
    chunk_s: float,
    heart_rate: bool,
    progress: bool | None,
) -> _Scan:
    """Read the recording span by span (``chunk_s`` each, with 1 s on both sides), find the R
    peaks of each span's own stretch, check and score its windows. A span that cannot be read is
    retried window by window, so only what cannot be read is lost."""
    contract = predictor.contract
    window_s, duration = contract.duration_s, long.duration_s
    starts = window_starts_s(duration, window_s, stride_s)
    scan = _Scan(
        starts,
        np.full((len(starts), len(predictor.labels)), np.nan, dtype=np.float64),
        np.array(["ok"] * len(starts), dtype=object),
        [],
    )
    chunk_s = max(chunk_s, stride_s)
    chunk_edges = np.arange(0.0, duration + chunk_s, chunk_s)
    bar = None
    if progress if progress is not None else sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=round(duration), unit="s", desc="ecgfounder monitor", file=sys.stderr)
    pad_s = 1.0
    for c0 in chunk_edges[:-1]:
        c1 = min(c0 + chunk_s, duration)
        idx = np.flatnonzero((starts >= c0) & (starts < c1))
        if len(idx) == 0 and c0 >= duration:
            break
        span0 = max(0.0, (starts[idx[0]] if len(idx) else c0) - pad_s)
        span1 = min(duration, (starts[idx[-1]] + window_s if len(idx) else c1) + pad_s)
        i0, i1 = int(math.floor(span0 * long.fs)), int(math.ceil(span1 * long.fs))
        try:
            rec = select_leads(long.read(i0, i1), contract.leads, lead=lead)
        except ECGFounderError as exc:
            reason = f"unreadable: {getattr(exc, 'reason', str(exc))[:80]}"
            for j in idx:
                a, b = int(math.floor(starts[j] * long.fs)), int(math.ceil((starts[j] + window_s) * long.fs))
                try:
                    one = select_leads(long.read(a, b), contract.leads, lead=lead)
                except ECGFounderError:
                    scan.quality[j] = reason
                    continue
                _score_windows(one, a / long.fs, [int(j)], scan, predictor)
        else:
            t0 = i0 / long.fs
            if heart_rate:
                own0, own1 = int(round((c0 - t0) * rec.fs)), int(round((c1 - t0) * rec.fs))
                r = _r_peaks(rec.signal[0], rec.fs)
                scan.peaks.append(t0 + r[(r >= own0) & (r < own1)] / rec.fs)
            _score_windows(rec, t0, [int(j) for j in idx], scan, predictor)
            del rec
            _release_memory()
        if bar is not None:
            bar.update(round(c1 - c0))
    if bar is not None:
        bar.close()
    return scan


def _score_windows(rec: Any, t0: float, idx: list[int], scan: _Scan, predictor: Any) -> None:
    """Check the windows ``idx`` of ``rec`` (which starts at ``t0`` s) and score those that pass,
    prepared as ``prepare`` prepares a record's windows (:func:`~ecgfounder.signal.prepare_windows`)."""
    contract = predictor.contract
    x = rec.signal.astype(np.float64)
    if rec.fs != contract.fs:
        x = resample(x, rec.fs, contract.fs)
    n = contract.n_samples
    keep, at = [], []
    for j in idx:
        a = max(0, int(round((scan.starts[j] - t0) * contract.fs)))
        w = x[:, a : a + n]
        scan.quality[j] = window_quality(w, predictor.prepare.quality)
        if scan.quality[j] == "ok":
            scan.quality[j] = _artifacts(w, contract.fs, rec.leads)
        if scan.quality[j] == "ok":
            keep.append(j)
            at.append(a)
    if keep:
        batch, _ = prepare_windows(x, contract, at, workers=1)
        scan.probs[keep] = predictor.forward(batch)


def _exclude_model_noise(scan: _Scan, names: list[str]) -> None:
    """A model label meaning noise at or above 0.5 excludes its window too."""
    for i, name in enumerate(names):
        if name.lower() in _NOISE_LABELS:
            noisy = np.nan_to_num(scan.probs[:, i]) >= 0.5
            scan.quality[(scan.quality == "ok") & noisy] = f"noisy (model: {name})"


def _window_table(
    scan: _Scan, names: list[str], window_s: float, duration: float, hr: np.ndarray, rr_cv: np.ndarray
) -> Any:
    import pandas as pd

    table = pd.DataFrame({"start_s": scan.starts, "end_s": np.minimum(scan.starts + window_s, duration)})
    for k, name in enumerate(names):
        table[name] = scan.probs[:, k]
    table["quality"] = scan.quality
    table["hr_bpm"] = hr
    table["rr_cv"] = rr_cv
    return table


def _summary(
    source: Any,
    model_name: str,
    long: Any,
    scan: _Scan,
    names: list[str],
    chosen: list[str],
    episodes: list[Episode],
    spans: np.ndarray,
    all_peaks: np.ndarray,
    window_s: float,
    stride_s: float,
    rules: EpisodeRules,
) -> dict[str, Any]:
    duration = long.duration_s
    valid = scan.quality == "ok"
    analysed = float(sum(b - a for (a, b), v in zip(spans, valid) if v))
    probs = scan.probs
    return {
        "record": str(source),
        "model": model_name,
        "notes": list(long.notes),
        "duration_s": round(duration, 3),
        "analysed_s": round(analysed, 3),
        "excluded_s": round(duration - analysed, 3),
        "excluded_by_reason": _excluded(spans, scan.quality),
        "burden": {
            label: round(burden([e for e in episodes if e.label == label], spans, valid), 6)
            for label in chosen
        },
        # the same share from the window probabilities (no threshold): docs/monitor.md compares both
        "burden_expected": {
            label: round(expected_burden(probs[:, names.index(label)], spans, valid), 6) for label in chosen
        },
        "episodes": {label: sum(e.label == label for e in episodes) for label in chosen},
        "heart_rate": _minute_hr(all_peaks, duration),
        "windows": {"count": int(len(scan.starts)), "window_s": window_s, "stride_s": stride_s},
        "rules": asdict(rules),
    }


def _write(
    out_dir: str | os.PathLike[str] | None, table: Any, episodes: list[Episode], summary: dict[str, Any]
) -> Path | None:
    """``windows.csv``, ``episodes.csv`` and ``summary.json`` in ``out_dir`` (None: nothing written)."""
    import pandas as pd

    if out_dir is None:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "windows.csv", index=False)
    pd.DataFrame(
        [
            {
                "label": e.label,
                "start_s": round(e.start_s, 3),
                "end_s": round(e.end_s, 3),
                "duration_s": round(e.duration_s, 3),
                "mean_probability": e.mean_probability,
                "max_probability": e.max_probability,
            }
            for e in episodes
        ],
        columns=["label", "start_s", "end_s", "duration_s", "mean_probability", "max_probability"],
    ).to_csv(out / "episodes.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out


def _excluded(spans: np.ndarray, quality: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for (a, b), q in zip(spans, quality):
        if q != "ok":
            out[str(q)] = round(out.get(str(q), 0.0) + (b - a), 3)
    return out


def _window_rhythm(peaks: np.ndarray, starts: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    hr = np.full(len(starts), np.nan)
    cv = np.full(len(starts), np.nan)
    if len(peaks) < 3:
        return hr, cv
    peaks = np.sort(peaks)
    for i, s in enumerate(starts):
        p = peaks[(peaks >= s) & (peaks < s + window_s)]
        rr = np.diff(p)
        rr = rr[(rr > 0.25) & (rr < 3.0)]  # 20-240 bpm
        if len(rr) >= 3:
            hr[i] = 60.0 / float(np.median(rr))
            cv[i] = float(np.std(rr) / np.mean(rr))
    return hr, cv


def _minute_hr(peaks: np.ndarray, duration: float) -> dict[str, Any]:
    if len(peaks) < 3:
        return {"mean_bpm": None, "min_bpm": None, "max_bpm": None, "per_minute": []}
    peaks = np.sort(peaks)
    rr = np.diff(peaks)
    t = peaks[1:]
    ok = (rr > 0.25) & (rr < 3.0)
    per_minute = []
    for m in range(int(math.ceil(duration / 60))):
        sel = ok & (t >= m * 60) & (t < (m + 1) * 60)
        per_minute.append(round(60.0 / float(np.mean(rr[sel])), 1) if sel.sum() >= 3 else None)
    vals = [v for v in per_minute if v is not None]
    return {
        "mean_bpm": round(60.0 / float(np.mean(rr[ok])), 1) if ok.any() else None,
        "min_bpm": min(vals) if vals else None,
        "max_bpm": max(vals) if vals else None,
        "per_minute": per_minute,
    }
