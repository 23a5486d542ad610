"""``monitor``: a long recording (Holter, patch, watch) in, windows, episodes, burden and heart rate out.

The recording is read span by span (:func:`~ecgfounder.io.chunks.open_long`), so memory does not
grow with its length. Windows of the model's length start every ``stride_s`` seconds; each is
checked (gaps, a flat lead, implausible amplitude), preprocessed with the model's recipe and
scored by the :class:`~ecgfounder.Predictor`'s backend. A model label meaning noise (``noisy``)
at or above 0.5 also excludes its window. Excluded windows are reported with their reason and
never counted as normal. Episodes and burden: :mod:`.episodes`. Beats: QRS complexes detected on
every lead of the file and fused, classed N/S/V/Q (:mod:`ecgfounder.signal.beats`), span by span;
from them the heart rate per window (median RR), the RR coefficient of variation per window (a
model-free second opinion on AF) and the Holter summary over the analysed time (:mod:`.holter`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGFounderError
from ..io.chunks import open_long
from ..io.leads import select_leads
from ..resampling import resample
from ..signal.beats import BeatRules, beat_features, classify_beats, detect_beats
from ..signal.pipeline import prepare_windows
from ..signal.quality import window_quality
from ..signal.window import window_starts
from .episodes import Episode, EpisodeRules, burden, expected_burden, find_episodes, fuse_rr, owned_spans
from .holter import HolterRules, clock_time, holter_summary

__all__ = ["monitor", "MonitorResult", "episode_rules_for", "window_starts_s"]

_NOISE_LABELS = ("noisy", "noise", "artifact", "artefact")


@dataclass
class MonitorResult:
    windows: Any  # DataFrame: start_s, end_s, a column per label, quality, hr_bpm, rr_cv
    episodes: list[Episode]
    summary: dict[str, Any]
    out_dir: Path | None = None
    beats: Any = None  # DataFrame: time_s, clock, rr_s, class, leads, confidence, analysed, ...


def episode_rules_for(
    model: Any, rules: EpisodeRules | Mapping[str, Any] | None = None
) -> tuple[EpisodeRules, str]:
    """The episode rules ``monitor`` uses with ``model``, and where they came from. A full
    :class:`EpisodeRules` is used as given. Otherwise the base is the registered model's own rules
    (``ModelEntry.episode_rules``, chosen on validation records) when ``model`` is the name of an
    entry that has them, else the :class:`EpisodeRules` defaults; the fields of a ``rules``
    mapping (the options a user gave) replace the base's. A model file or a model trained from a
    registered one gets the defaults: an operating point belongs to the weights it was chosen for."""
    from ..models import get_model_entry

    if isinstance(rules, EpisodeRules):
        return rules, "given"
    base: dict[str, Any] = {}
    source = "defaults"
    try:
        entry = get_model_entry(model) if isinstance(model, str) else None
    except KeyError:  # a file
        entry = None
    if entry is not None and entry.episode_rules:
        base = dict(entry.episode_rules)
        source = f"model {entry.name}: {entry.episode_rules_from or 'its registry entry'}"
    given = dict(rules or {})
    unknown = sorted(set(given) - {f.name for f in fields(EpisodeRules)})
    if unknown:
        raise ValueError(f"unknown episode rule(s): {', '.join(unknown)}")
    if given:
        source += f", with {', '.join(f'{k}={v}' for k, v in given.items())} given"
    return EpisodeRules(**(base | given)), source


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
    """Hand the freed heap of a chunk back to the system (glibc's ``malloc_trim``): left to the
    allocator, a long record's process grows with every chunk. No ``gc.collect()``: a chunk leaves
    no reference cycles behind (checked with ``gc.DEBUG_SAVEALL`` on a 1 h record, 6 h stays at the
    same peak), and a full collection took 0.3 s a chunk in a process holding many objects."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        try:
            _LIBC = ctypes.CDLL("libc.so.6")
        except OSError:  # not glibc
            _LIBC = False
    if _LIBC:
        try:
            _LIBC.malloc_trim(0)
        except AttributeError:  # a libc without malloc_trim
            pass


_LIBC: Any = None


@dataclass
class _Scan:
    """What one pass over the recording gives: per window its probabilities (NaN where not scored)
    and quality, and per span the beats found there (time s, leads, confidence, features)."""

    starts: np.ndarray
    probs: np.ndarray
    quality: np.ndarray
    peaks: list[dict[str, np.ndarray]]


def monitor(
    source: str | os.PathLike[str],
    model: Any = None,
    *,
    lead: str | None = None,
    stride_s: float = 5.0,
    chunk_s: float = 600.0,
    rules: EpisodeRules | Mapping[str, Any] | None = None,
    labels: list[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    batch_size: int = 64,
    heart_rate: bool = True,
    report: bool = True,
    beat_rules: BeatRules = BeatRules(),
    holter_rules: HolterRules = HolterRules(),
    paper: str = "a4",
) -> MonitorResult:
    """Analyse a recording of any length; see the module. ``model``: a name, file or loaded model
    (default: the released single-lead ECGFounder, or the 12-lead one for 12-lead files);
    ``labels``: the labels episodes are drawn for (default: all but normal and noise labels);
    ``out_dir``: where ``windows.csv``, ``episodes.csv``, ``beats.csv``, ``summary.json`` and
    (``report``) ``report.pdf`` are written; ``rules``: see :func:`episode_rules_for`;
    ``heart_rate=False`` skips the beats (and with them
    the heart rate and the Holter summary); ``paper``: ``a4`` or ``letter``."""
    from ..infer import Predictor
    from ..infer.runs import suggest_model

    if stride_s <= 0 or chunk_s <= 0:
        raise ValueError("stride_s and chunk_s must be positive")
    long = open_long(source)
    if model is None:
        model, _ = suggest_model([str(source)])
    rules, rules_from = episode_rules_for(model, rules)
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
        beat_rules=beat_rules,
    )
    _exclude_model_noise(scan, names)
    window_s, duration = contract.duration_s, long.duration_s
    valid = scan.quality == "ok"
    spans = owned_spans(scan.starts, window_s, stride_s, duration)
    beats = _beat_table(scan, spans[valid], long.patient.get("start"), beat_rules)
    hr, rr_cv = _window_rhythm(beats["time_s"].to_numpy(), scan.starts, window_s)
    episodes: list[Episode] = []
    for label in chosen:
        score = fuse_rr(label, scan.probs[:, names.index(label)], rr_cv, rules)
        episodes += find_episodes(label, spans, score, valid, rules)
    episodes.sort(key=lambda e: (e.start_s, e.label))
    table = _window_table(scan, names, window_s, duration, hr, rr_cv)
    summary = _summary(
        source, predictor.model_name, long, scan, names, chosen, episodes, spans, window_s, stride_s, rules
    )
    summary["rules_from"] = rules_from
    if heart_rate:
        analysed = beats[beats["analysed"]]
        holter = holter_summary(
            analysed["time_s"].to_numpy(),
            analysed["class"].to_numpy(),
            spans[valid],
            duration,
            start=long.patient.get("start"),
            rules=holter_rules,
        )
        rate = holter.pop("heart_rate")
        summary["heart_rate"] = {
            "mean_bpm": rate["mean_bpm"],
            "min_bpm": rate.get("min", {}).get("bpm"),
            "max_bpm": rate.get("max", {}).get("bpm"),
            "min": rate.get("min"),
            "max": rate.get("max"),
            "per_minute": rate["per_minute"],
        }
        summary["holter"] = holter
    else:
        summary["heart_rate"] = {"mean_bpm": None, "min_bpm": None, "max_bpm": None, "per_minute": []}
    out = _write(out_dir, table, episodes, summary, beats if heart_rate else None)
    result = MonitorResult(table, episodes, summary, out, beats)
    if out is not None and report:
        from .report import write_report

        write_report(result, long, out / "report.pdf", lead=lead, paper=paper)
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
    beat_rules: BeatRules = BeatRules(),
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
            raw = long.read(i0, i1)
            rec = select_leads(raw, contract.leads, lead=lead)
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
                scan.peaks.append(_span_beats(raw, t0, c0, c1, beat_rules))
            _score_windows(rec, t0, [int(j) for j in idx], scan, predictor)
            del rec, raw
            _release_memory()
        if bar is not None:
            bar.update(round(c1 - c0))
    if bar is not None:
        bar.close()
    return scan


def _span_beats(raw: Any, t0: float, c0: float, c1: float, rules: BeatRules) -> dict[str, np.ndarray]:
    """The beats of the span ``[c0, c1)`` s found on every lead of ``raw`` (which starts at ``t0``)."""
    found = detect_beats(raw.signal, raw.fs, raw.leads, rules)
    feats = beat_features(raw.signal, raw.fs, found.samples)
    t = t0 + found.times_s
    own = (t >= c0) & (t < c1)
    names = np.array(found.leads)
    leads = np.array([" ".join(names[row]) for row in found.seen_by], dtype=object)
    return {"time_s": t[own], "confidence": found.confidence[own], "leads": leads[own]} | {
        k: v[own] for k, v in feats.items()
    }


def _beat_table(scan: _Scan, analysed: np.ndarray, start: str | None, rules: BeatRules) -> Any:
    """All beats of the recording, classed (:func:`~ecgfounder.signal.beats.classify_beats`),
    with their clock time, the RR before them and whether they fall in analysed time."""
    import pandas as pd

    from .holter import beats_inside

    columns = ("time_s", "confidence", "leads", "correlation", "width_ms", "dominant_width_ms", "amplitude")
    parts = {k: np.concatenate([p[k] for p in scan.peaks]) if scan.peaks else np.zeros(0) for k in columns}
    order = np.argsort(parts["time_s"], kind="stable")
    parts = {k: v[order] for k, v in parts.items()}
    t = parts["time_s"].astype(np.float64)
    classes = classify_beats(t, parts, parts["confidence"], rules)
    table = pd.DataFrame(
        {
            "time_s": np.round(t, 4),
            "clock": [clock_time(x, start) for x in t],
            "rr_s": np.round(np.diff(t, prepend=np.nan), 4),
            "class": classes,
            "leads": parts["leads"],
            "confidence": np.round(parts["confidence"].astype(np.float64), 3),
            "correlation": np.round(parts["correlation"].astype(np.float64), 3),
            "width_ms": np.round(parts["width_ms"].astype(np.float64), 1),
            "analysed": beats_inside(t, analysed),
        }
    )
    return table


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
        "patient": dict(long.patient),
        "windows": {"count": int(len(scan.starts)), "window_s": window_s, "stride_s": stride_s},
        "rules": asdict(rules),
    }


def _write(
    out_dir: str | os.PathLike[str] | None,
    table: Any,
    episodes: list[Episode],
    summary: dict[str, Any],
    beats: Any = None,
) -> Path | None:
    """``windows.csv``, ``episodes.csv``, ``beats.csv`` and ``summary.json`` in ``out_dir`` (None:
    nothing written)."""
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
    if beats is not None:
        beats.to_csv(out / "beats.csv", index=False)
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
