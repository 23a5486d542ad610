"""Noise, artefact and electrode checks: what a technician looks for before trusting an ECG.

Each check is a per-lead signal-quality index compared with a threshold; a lead that fails gets a
flag (``"noise:V2"``). The indices are ratios to the lead's own ECG content, so they do not depend
on the gain or on the device (all computed on the record at its own rate, float64):

``baseline_wander``
    peak-to-peak of the baseline (low-pass 0.7 Hz) over the typical peak-to-peak of 1 s of the
    QRS band (5-40 Hz), where no wander leaks in. Clean records: at most about 2 (LUDB, CinC 2017, CinC 2021).
``powerline_50hz`` / ``powerline_60hz``
    amplitude of the mains sinusoid (Welch power within 1 Hz of 50/60 Hz) over the standard
    deviation of the ECG band. Not measurable (not flagged) when the rate cannot carry it.
``noise``
    broadband / muscle (EMG) noise: median absolute value above 40 Hz (mains notched out) over the
    ECG band's standard deviation. ECG energy above 40 Hz sits in the QRS complexes, a few percent
    of the samples; noise lifts the median. Needs a rate above 90 Hz.
``motion_artifact``
    the largest peak-to-peak of 1 s of the ECG band over the median of those (0.5 s hop): a burst
    many times the usual beat amplitude.
``flat_segment``
    a second of the lead (ECG band) with a peak-to-peak below 5 uV inside a lead that is otherwise alive
    (an electrode that came off for a while; a lead flat throughout is ``flat`` already).
``limb_reversal:LA/RA`` (or ``RA/LL``)
    on records with leads I, II, aVR (or derivable) and V5 or V6: after a left/right arm
    reversal lead I is inverted and aVR takes aVL's place, so aVR resembles the lateral chest
    leads more than lead I does. Score = corr(aVR, V5+V6) - corr(lead, V5+V6) with lead I for
    LA/RA and lead II for RA/LL; a positive score flags the reversal when the P waves agree (present
    and negative in lead I, or II), or a score above 0.45 alone (no P waves: AF). Infarction and
    axis deviation move the QRS relations, not the P waves. LA/LL reversal leaves every lead
    plausible and is not detected (documented in docs/trust.md).

Thresholds and the measured flag rates on clean and corrupted real records: ``docs/trust.md``
(``benchmarks/bench_robustness.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "ArtifactThresholds",
    "artifact_flags",
    "artifact_indices",
    "limb_reversal",
    "limb_reversal_scores",
    "p_wave_polarity",
    "ARTIFACT_FLAGS",
]

ARTIFACT_FLAGS = (
    "baseline_wander",
    "powerline_50hz",
    "powerline_60hz",
    "noise",
    "motion_artifact",
    "flat_segment",
    "limb_reversal",
)


@dataclass(frozen=True)
class ArtifactThresholds:
    wander_ratio: float = 3.5  # baseline peak-to-peak / QRS-band peak-to-peak
    powerline_ratio: float = 1.0  # mains amplitude / ECG-band standard deviation
    noise_floor: float = 0.45  # median |x above 40 Hz| / ECG-band standard deviation
    burst_ratio: float = 12.0  # largest 1 s peak-to-peak / median 1 s peak-to-peak
    flat_segment_mv: float = 0.005  # a 1 s stretch below this peak-to-peak: flat segment
    reversal_score: float = 0.0  # limb reversal score above this, with the P waves agreeing: flagged
    reversal_strong: float = 0.45  # ... above this, whatever the P waves say (AF, no P waves)
    p_consistency: float = 0.75  # median beat-to-beat correlation of the P window: P waves present
    enabled: bool = True


@lru_cache(maxsize=64)
def _design(kind: str, freq: tuple[float, ...], fs: float, order: int = 2) -> np.ndarray:
    """Second-order sections, cached: designing costs more than filtering 10 s."""
    from scipy.signal import butter, iirnotch, tf2sos

    if kind == "notch+highpass":
        sections = [butter(order, freq[0], "highpass", fs=fs, output="sos")]
        for f0 in freq[1:]:
            b, a = iirnotch(f0, 10.0, fs=fs)
            sections.append(tf2sos(b, a))
        return np.concatenate(sections)
    return butter(order, freq if len(freq) > 1 else freq[0], kind, fs=fs, output="sos")


@lru_cache(maxsize=64)
def _initial_state(kind: str, freq: tuple[float, ...], fs: float, order: int = 2) -> np.ndarray:
    from scipy.signal import sosfilt_zi

    return sosfilt_zi(_design(kind, freq, fs, order))


def _filter(kind: str, freq: tuple[float, ...], fs: float, x: np.ndarray, order: int = 2) -> np.ndarray:
    """One forward pass over (leads, samples), started in the steady state of each lead's first
    sample (no start-up transient). The indices are phase-blind (amplitudes, medians, correlations
    between leads filtered alike), so the backward pass of filtfilt would only double the cost."""
    from scipy.signal import sosfilt

    sos = _design(kind, freq, float(fs), order)
    zi = _initial_state(kind, freq, float(fs), order)[:, None, :] * x[None, :, :1]
    return sosfilt(sos, x, axis=-1, zi=zi)[0]


def _ecg_band(x: np.ndarray, fs: float) -> np.ndarray:
    if fs / 2 > 42:
        return _filter("bandpass", (0.67, 40.0), fs, x)
    return _filter("highpass", (0.67,), fs, x)


def _baseline_ptp(x: np.ndarray, fs: float) -> np.ndarray:
    """Peak-to-peak (0.5-99.5 percentile) of the 0.7 Hz low-pass baseline, computed at about 25 Hz
    (block means first: the baseline holds nothing faster)."""
    step = max(1, int(fs // 25))
    m = x.shape[-1] // step
    low = x[:, : m * step].reshape(x.shape[0], m, step).mean(-1)
    if m < 16:
        return np.full(x.shape[0], np.nan)
    base = _filter("lowpass", (0.7,), fs / step, low)
    lo, hi = np.percentile(base, [0.5, 99.5], axis=-1)
    return hi - lo


_NAMES = ("wander", "powerline_50hz", "powerline_60hz", "noise", "burst", "min_ptp_mv")


def artifact_indices(signal: np.ndarray, fs: float, band: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The per-lead indices described in the module, for a (leads, samples) signal in mV; NaN where
    an index cannot be measured (rate too low, record shorter than 2 s). ``band``: the signal's
    ECG band (0.67-40 Hz) when the caller has it."""
    x = np.asarray(signal, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    n_leads, n = x.shape
    if n < 2 * fs or n < 64:
        return {k: np.full(n_leads, np.nan) for k in _NAMES}
    band = _ecg_band(x, fs) if band is None else band
    sd = band.std(axis=-1) + 1e-12
    # 1 s windows every 0.5 s (pairs of 0.5 s blocks): the typical beat amplitude (median) and the
    # largest burst; the smallest says whether a second of the lead went flat
    half = max(1, int(round(fs / 2)))
    blocks = band[:, : (n // half) * half].reshape(n_leads, n // half, half)
    b_max, b_min = blocks.max(-1), blocks.min(-1)
    ptp = np.maximum(b_max[:, 1:], b_max[:, :-1]) - np.minimum(b_min[:, 1:], b_min[:, :-1])
    typical = np.maximum(np.median(ptp, axis=-1), 1e-9)
    # the wander is measured against the QRS band (5-40 Hz), where none of it leaks
    qrs = _filter("highpass", (5.0,), fs, band)[:, : (n // half) * half].reshape(n_leads, n // half, half)
    q_max, q_min = qrs.max(-1), qrs.min(-1)
    q_ptp = np.maximum(q_max[:, 1:], q_max[:, :-1]) - np.minimum(q_min[:, 1:], q_min[:, :-1])
    out = {
        "wander": _baseline_ptp(x, fs) / np.maximum(np.median(q_ptp, axis=-1), 1e-9),
        "burst": ptp.max(-1) / typical,
        "min_ptp_mv": ptp.min(-1),
    }
    # mains: amplitude of the sinusoid from the Hann-windowed spectrum within 1 Hz of 50/60 Hz
    window = np.hanning(n)
    spec = np.abs(np.fft.rfft(x * window, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    scale = 4.0 / (n * float((window**2).sum()))  # sum over the peak of a sinusoid A -> A^2
    mains = []
    for f0 in (50.0, 60.0):
        key = f"powerline_{int(f0)}hz"
        if f0 < fs / 2 - 2:
            out[key] = np.sqrt(spec[:, np.abs(freqs - f0) <= 1.0].sum(-1) * scale) / sd
            mains.append(f0)
        else:
            out[key] = np.full(n_leads, np.nan)
    if fs / 2 > 45:
        high = _filter("notch+highpass", (40.0, *mains), fs, x, order=4)
        out["noise"] = np.median(np.abs(high), axis=-1) / sd
    else:
        out["noise"] = np.full(n_leads, np.nan)
    return out


#: records longer than this are judged on :data:`SAMPLED_SEGMENTS` stretches of :data:`SEGMENT_S`
#: spread over the record (a flag must hold on more than half of them), so that a 24 h file costs
#: what 10 minutes cost
LONG_RECORD_S = 300.0
SEGMENT_S = 60.0
SAMPLED_SEGMENTS = 10


def artifact_flags(
    signal: np.ndarray,
    fs: float,
    leads: Sequence[str],
    thresholds: ArtifactThresholds = ArtifactThresholds(),
    skip: Sequence[str] = (),
) -> list[str]:
    """Flags (``"noise:V2"``, ``"limb_reversal:LA/RA"``...) for a (leads, samples) mV signal;
    leads in ``skip`` (already flagged flat) are not checked. Records longer than
    :data:`LONG_RECORD_S` are judged on sampled stretches (a flag must hold on most of them)."""
    if not thresholds.enabled:
        return []
    n = signal.shape[-1]
    seg = int(round(SEGMENT_S * fs))
    if n <= LONG_RECORD_S * fs or seg < 2:
        return _flags(signal, fs, leads, thresholds, skip)
    starts = np.unique(np.linspace(0, n - seg, SAMPLED_SEGMENTS).astype(np.int64))
    counts: dict[str, int] = {}
    for a in starts:
        for flag in dict.fromkeys(_flags(signal[:, a : a + seg], fs, leads, thresholds, skip)):
            counts[flag] = counts.get(flag, 0) + 1
    return [flag for flag, c in counts.items() if c > len(starts) / 2]


def _flags(
    signal: np.ndarray, fs: float, leads: Sequence[str], t: ArtifactThresholds, skip: Sequence[str]
) -> list[str]:
    keep = [i for i, lead in enumerate(leads) if lead not in skip]
    if not keep:
        return []
    sig = np.asarray(signal, dtype=np.float64)[keep]
    names = [leads[i] for i in keep]
    band = _ecg_band(sig - sig.mean(axis=-1, keepdims=True), fs) if sig.shape[-1] >= 2 * fs else None
    ind = artifact_indices(sig, fs, band=band)
    rules = (
        ("baseline_wander", ind["wander"] > t.wander_ratio),
        ("powerline_50hz", ind["powerline_50hz"] > t.powerline_ratio),
        ("powerline_60hz", ind["powerline_60hz"] > t.powerline_ratio),
        ("noise", ind["noise"] > t.noise_floor),
        ("motion_artifact", ind["burst"] > t.burst_ratio),
        ("flat_segment", ind["min_ptp_mv"] < t.flat_segment_mv),
    )
    flags = [f"{flag}:{name}" for flag, hit in rules for name, h in zip(names, hit) if h]
    suspected = (
        limb_reversal(
            band,
            fs,
            names,
            t.reversal_score,
            filtered=True,
            strong=t.reversal_strong,
            p_consistency=t.p_consistency,
        )
        if band is not None
        else None
    )
    if suspected:
        flags.append(f"limb_reversal:{suspected}")
    return flags


def _lead(sig: np.ndarray, leads: Sequence[str], name: str) -> np.ndarray | None:
    pos = {lead: i for i, lead in enumerate(leads)}
    if name in pos:
        return sig[pos[name]]
    if {"I", "II"} <= pos.keys():  # Einthoven / Goldberger from I and II
        i, ii = sig[pos["I"]], sig[pos["II"]]
        return {"III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2, "aVF": ii - i / 2}.get(name)
    return None


def limb_reversal_scores(
    signal: np.ndarray, fs: float, leads: Sequence[str], filtered: bool = False
) -> dict[str, float] | None:
    """``{"LA/RA": s, "RA/LL": s}`` (see the module), or None when the leads needed are missing.
    ``filtered``: the signal is the ECG band already."""
    need = [_lead(signal, leads, name) for name in ("I", "II", "aVR")]
    chest = [signal[list(leads).index(v)] for v in ("V5", "V6") if v in leads]
    if any(v is None for v in need) or not chest or signal.shape[-1] < 2 * fs:
        return None
    stacked = np.stack([*need, np.sum(chest, axis=0)])  # type: ignore[list-item]
    band = stacked if filtered else _ecg_band(stacked, fs)
    if (band.std(-1) < 1e-6).any():
        return None
    c = np.corrcoef(band)
    return {"LA/RA": float(c[2, 3] - c[0, 3]), "RA/LL": float(c[2, 3] - c[1, 3])}


def p_wave_polarity(
    signal: np.ndarray, fs: float, leads: Sequence[str], filtered: bool = False
) -> dict[str, float] | None:
    """The P waves' polarity in leads I, II and aVR, and whether there are P waves to judge.

    Beats are found on the summed QRS-band energy of all leads; in each lead the window from 300 to
    50 ms before every R peak (baseline: its first 30 ms) is averaged (median over beats) and its
    signed area taken. Returned: ``{"I", "II", "aVR"}`` areas over the sum of their magnitudes (a
    sinus P wave is positive in I and II, negative in aVR), and ``consistency``, the median
    correlation of each beat's lead-II window with the median one (near 1 for real P waves; low in
    atrial fibrillation or noise). None with fewer than 3 beats or without leads I and II.
    """
    x = np.asarray(signal, dtype=np.float64)
    if fs / 2 <= 32:
        return None
    band = x if filtered else _ecg_band(x, fs)
    from scipy.signal import find_peaks

    energy = np.abs(_filter("bandpass", (8.0, 30.0), fs, band)).sum(0)
    height = np.percentile(energy, 98) * 0.35
    peaks, _ = find_peaks(energy, distance=max(1, int(0.3 * fs)), height=height)
    a, b, base = int(0.30 * fs), int(0.05 * fs), max(1, int(0.03 * fs))
    peaks = peaks[(peaks > a) & (peaks < band.shape[1] - int(0.1 * fs))]
    if len(peaks) < 3:
        return None
    areas, windows = {}, {}
    for name in ("I", "II", "aVR"):
        v = _lead(band, leads, name)
        if v is None:
            return None
        w = np.stack([v[p - a : p - b] for p in peaks])
        w = w - w[:, :base].mean(1, keepdims=True)
        windows[name] = w
        areas[name] = float(np.median(w, 0).sum())
    total = sum(abs(v) for v in areas.values()) or 1.0
    ref = np.median(windows["II"], 0)
    corr = [np.corrcoef(ref, w)[0, 1] for w in windows["II"] if w.std() > 0] if ref.std() > 0 else []
    return {
        **{k: v / total for k, v in areas.items()},
        "consistency": float(np.median(corr)) if corr else 0.0,
    }


def limb_reversal(
    signal: np.ndarray,
    fs: float,
    leads: Sequence[str],
    threshold: float = 0.0,
    filtered: bool = False,
    strong: float = 0.45,
    p_consistency: float = 0.75,
) -> str | None:
    """The suspected limb-electrode reversal (``"LA/RA"`` or ``"RA/LL"``), or None.

    A reversal is flagged when its morphology score (:func:`limb_reversal_scores`) is above
    ``threshold`` and the P waves agree (present, ``consistency`` >= ``p_consistency``, and
    negative in lead I for LA/RA, in lead II for RA/LL: the sinus node does not move when an
    infarct or an axis deviation changes the QRS), or when the score alone is above ``strong``
    (records without P waves: atrial fibrillation). Inferior or lateral infarction and axis
    deviations change the QRS relations the score reads, not the P waves (docs/trust.md).
    """
    x = np.asarray(signal, dtype=np.float64)
    scores = limb_reversal_scores(x, fs, leads, filtered)
    if not scores:
        return None
    p = None
    found = []
    for name, score in scores.items():
        if score <= threshold:
            continue
        if score > strong:
            found.append((score, name))
            continue
        if p is None:
            p = p_wave_polarity(x, fs, leads, filtered) or {"consistency": 0.0}
        lead = "I" if name == "LA/RA" else "II"
        if p["consistency"] >= p_consistency and p.get(lead, 0.0) < 0:
            found.append((score, name))
    return max(found)[1] if found else None
