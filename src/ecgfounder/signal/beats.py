"""Beats: QRS detection on every lead, fused, and each beat's class (N, S, V, Q).

Detection (:func:`detect_beats`), after Pan and Tompkins (1985) with the leads fused:

1. every lead band-passed to 5-15 Hz (zero phase), differentiated, squared and integrated over
   120 ms: a QRS energy per lead;
2. each lead's energy divided by its own running QRS level (the median, over +-6 s, of the
   energy's maxima in 1.5 s blocks), so each lead counts about 1 at its QRS complexes whatever
   its amplitude, and capped at 3 so one lead's artefact cannot outvote the others;
3. the leads averaged (flat leads and leads with no QRS level left out): one fused energy, which
   is 1 at a QRS complex seen by every lead;
4. peaks of the fused energy at least 200 ms apart above ``threshold`` x its running level are
   beats; of two peaks within 360 ms, one with less than half the other's energy is taken for a
   T wave (or a P wave) and dropped; where an interval exceeds 1.66 x the running RR, the gap is searched
   again at a lower threshold (search-back).

Each beat's fiducial is the R (or S) peak of the record's reference lead, the lead whose complexes
stand out most: the sample of largest deviation from the local baseline within +-60 ms of the
energy peak, in the 1-40 Hz signal. The leads whose own energy reaches the threshold are listed
with the beat; its confidence is its fused energy over the running level (at most 1).

Classes (:func:`beat_features` per stretch of signal, :func:`classify_beats` over the record):
the patient's own dominant beat is the median complex of the beats at their usual rate; every
beat is compared with it (correlation, QRS width, amplitude) and with its neighbours' timing
(prematurity: the preceding RR over the local RR; the longer interval after it). V: a complex
unlike the dominant one, or different and wide or premature; S: a dominant-like complex arriving
early and followed by a longer interval (sinus arrhythmia speeds up and slows down gradually);
Q: a beat detected with low confidence; N: the rest. AAMI EC57's classes: N (normal and
bundle-branch beats), S (supraventricular ectopic), V (ventricular ectopic), Q (unknown).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .artifacts import _design

__all__ = ["BeatRules", "Beats", "detect_beats", "beat_features", "classify_beats", "BEAT_CLASSES"]

BEAT_CLASSES = ("N", "S", "V", "Q")


@dataclass(frozen=True)
class BeatRules:
    """The detector's and the classifier's settings (defaults in docs/monitor.md)."""

    threshold: float = 0.25  # fused energy over its running level at which a peak is a beat
    searchback_threshold: float = 0.1  # ... in a gap longer than searchback_rr x the running RR
    searchback_rr: float = 1.66
    refractory_s: float = 0.2
    t_wave_s: float = 0.36
    # classification
    premature: float = 0.88  # RR before the beat under this share of the local RR: premature
    pause_after: float = 1.15  # the RR after an S beat exceeds the RR before it by this factor
    similar: float = 0.9  # correlation with the dominant complex at or above which it is alike
    wide_ms: float = 25.0  # QRS wider than the dominant one by this much: wide
    unlike: float = 0.75  # correlation under which a complex is unlike the dominant one
    min_confidence: float = 0.2  # beats detected with less: Q


@dataclass
class Beats:
    """Beats of one record (or stretch): fiducial samples, the leads that saw each, confidence,
    and (after :func:`classify_beats`) classes."""

    samples: np.ndarray  # (B,) int64 fiducial sample
    fs: float
    leads: tuple[str, ...]
    seen_by: np.ndarray  # (B, L) bool: the leads whose own energy reached the threshold
    confidence: np.ndarray  # (B,) in [0, 1]
    classes: np.ndarray | None = None  # (B,) of BEAT_CLASSES

    @property
    def times_s(self) -> np.ndarray:
        return self.samples / self.fs

    def __len__(self) -> int:
        return len(self.samples)


def _sos(kind: str, freq: tuple[float, ...], fs: float) -> np.ndarray:
    """The signal layer's cached Butterworth design, its corners kept under the Nyquist rate."""
    return _design(kind, tuple(min(v, 0.95 * fs / 2) for v in freq), float(fs))


def _running_level(e: np.ndarray, fs: float, block_s: float = 1.5, span_blocks: int = 4) -> np.ndarray:
    """Per sample, the median over +-``span_blocks`` blocks of the per-block maxima of ``e`` (..., N)."""
    from scipy.ndimage import median_filter

    n = e.shape[-1]
    b = max(1, int(round(block_s * fs)))
    nb = -(-n // b)
    pad = nb * b - n
    padded = np.concatenate([e, np.repeat(e[..., -1:], pad, axis=-1)], axis=-1) if pad else e
    maxima = padded.reshape(*e.shape[:-1], nb, b).max(-1)
    level = median_filter(maxima, size=(1,) * (maxima.ndim - 1) + (2 * span_blocks + 1,), mode="nearest")
    return np.repeat(level, b, axis=-1)[..., :n]


def _energy(x: np.ndarray, fs: float) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import sosfiltfilt

    bp = sosfiltfilt(_sos("bandpass", (5.0, 15.0), fs), x, axis=-1)
    d = np.diff(bp, axis=-1, prepend=bp[..., :1]) * fs
    return uniform_filter1d(d * d, size=max(1, int(round(0.12 * fs))), axis=-1, mode="nearest")


def detect_beats(
    signal: np.ndarray, fs: float, leads: tuple[str, ...] | list[str] = (), rules: BeatRules = BeatRules()
) -> Beats:
    """Beats in ``signal`` (leads x samples, mV) at ``fs`` Hz; see the module."""
    from scipy.signal import find_peaks, sosfiltfilt

    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    n_leads, n = x.shape
    names = tuple(leads) if len(leads) == n_leads else tuple(f"lead{i + 1}" for i in range(n_leads))
    empty = Beats(np.zeros(0, np.int64), fs, names, np.zeros((0, n_leads), bool), np.zeros(0))
    if n < int(fs) or n_leads == 0:
        return empty
    x = np.where(np.isfinite(x), x, 0.0)
    x = x - np.median(x, axis=1, keepdims=True)
    e = _energy(x, fs)
    level = _running_level(e, fs)
    scale = np.median(level, axis=1)
    usable = (np.ptp(x, axis=1) >= 0.02) & (scale > 0)
    if not usable.any():
        return empty
    norm = np.zeros_like(e)
    norm[usable] = np.minimum(e[usable] / np.maximum(level[usable], 1e-3 * scale[usable, None]), 3.0)
    fused = norm[usable].mean(0)
    flevel = np.maximum(_running_level(fused, fs), 0.05)
    rel = fused / flevel
    peaks, _ = find_peaks(
        rel, height=rules.searchback_threshold, distance=max(1, int(rules.refractory_s * fs))
    )
    strong = peaks[rel[peaks] >= rules.threshold]
    chosen = _drop_t_waves(strong, rel, fs, rules)
    chosen = _search_back(chosen, peaks, rel, fs, rules)
    if len(chosen) == 0:
        return empty
    # the fiducial: R (or S) peak of the reference lead in the 1-40 Hz signal
    wide = sosfiltfilt(_sos("bandpass", (1.0, 40.0), fs), x, axis=-1)
    at = norm[:, chosen]
    ref = int(np.argmax(np.where(usable, np.median(at, axis=1), -1.0)))
    half = max(1, int(round(0.06 * fs)))
    idx = np.clip(chosen[:, None] + np.arange(-half, half + 1)[None, :], 0, n - 1)
    seg = wide[ref][idx]
    base = np.median(seg, axis=1, keepdims=True)
    fid = idx[np.arange(len(chosen)), np.argmax(np.abs(seg - base), axis=1)]
    fid, keep = np.unique(fid, return_index=True)
    seen = (at >= rules.threshold).T[keep] & usable[None, :]
    confidence = np.minimum(rel[chosen][keep], 1.0)
    return Beats(fid.astype(np.int64), fs, names, seen, confidence)


def _drop_t_waves(peaks: np.ndarray, rel: np.ndarray, fs: float, rules: BeatRules) -> np.ndarray:
    """Of two peaks within ``t_wave_s`` of each other, drop the one with under half the other's
    energy (a T wave after a beat, or a P wave or artefact before one)."""
    if len(peaks) < 2:
        return peaks
    close = np.diff(peaks) < rules.t_wave_s * fs
    if not close.any():
        return peaks
    keep = [int(peaks[0])]
    for p in peaks[1:]:
        p = int(p)
        if p - keep[-1] < rules.t_wave_s * fs:
            if rel[p] < 0.5 * rel[keep[-1]]:
                continue
            if rel[keep[-1]] < 0.5 * rel[p]:
                keep[-1] = p
                continue
        keep.append(p)
    return np.asarray(keep, dtype=np.int64)


def _search_back(
    chosen: np.ndarray, candidates: np.ndarray, rel: np.ndarray, fs: float, rules: BeatRules
) -> np.ndarray:
    """In every interval over ``searchback_rr`` x the running RR, add the strongest candidate at
    least ``t_wave_s`` from both ends (repeated while the interval stays long)."""
    if len(chosen) < 3:
        return chosen
    out = list(map(int, chosen))
    i = 1
    while i < len(out):
        rr = np.diff(out[max(0, i - 9) : i + 1]) if i >= 2 else np.diff(out[: min(len(out), 10)])
        local = float(np.median(rr[:-1])) if len(rr) > 1 else float(np.median(np.diff(out)))
        gap = out[i] - out[i - 1]
        if gap > rules.searchback_rr * local:
            margin = rules.t_wave_s * fs
            inside = candidates[(candidates > out[i - 1] + margin) & (candidates < out[i] - margin)]
            if len(inside):
                best = int(inside[np.argmax(rel[inside])])
                out.insert(i, best)
                continue
        i += 1
    return np.asarray(out, dtype=np.int64)


def beat_features(
    signal: np.ndarray, fs: float, samples: np.ndarray, usual: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per beat of one stretch of signal: ``correlation`` with the dominant complex (all usable
    leads together), ``width_ms`` of the QRS and the dominant one's (``dominant_width_ms``), and
    ``amplitude`` relative to the dominant complex. ``usual`` (B,) bool: the beats the dominant
    complex is built from (default: all)."""
    from scipy.signal import sosfiltfilt

    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    x = np.where(np.isfinite(x), x, 0.0)
    samples = np.asarray(samples, dtype=np.int64)
    nb = len(samples)
    out = {k: np.full(nb, np.nan) for k in ("correlation", "width_ms", "dominant_width_ms", "amplitude")}
    if nb == 0 or x.shape[1] < fs:
        return out
    wide = sosfiltfilt(_sos("bandpass", (1.0, 40.0), fs), x, axis=-1)
    usable = np.ptp(x, axis=1) >= 0.02
    if not usable.any():
        return out
    wide = wide[usable]
    a, b = int(round(0.1 * fs)), int(round(0.12 * fs))
    idx = np.clip(samples[:, None] + np.arange(-a, b + 1)[None, :], 0, x.shape[1] - 1)
    cx = wide[:, idx]  # (L, B, W)
    cx = cx - np.median(cx, axis=2, keepdims=True)
    flat = cx.transpose(1, 0, 2).reshape(nb, -1)
    use = np.ones(nb, bool) if usual is None else np.asarray(usual, bool)
    if use.sum() < 3:
        use = np.ones(nb, bool)
    template = np.median(flat[use], axis=0)
    corr = _corr(flat, template)
    alike = use & (corr >= 0.8)
    if alike.sum() >= 3:
        template = np.median(flat[alike], axis=0)
        corr = _corr(flat, template)
    out["correlation"] = corr
    norm_t = float(np.linalg.norm(template)) or 1.0
    out["amplitude"] = np.linalg.norm(flat, axis=1) / norm_t
    slope = np.abs(np.diff(cx, axis=2)).sum(0)  # (B, W-1)
    out["width_ms"] = _width_ms(slope, fs)
    t_shape = template.reshape(int(usable.sum()), -1)
    out["dominant_width_ms"] = np.full(nb, _width_ms(np.abs(np.diff(t_shape, axis=1)).sum(0)[None], fs)[0])
    return out


def _corr(flat: np.ndarray, template: np.ndarray) -> np.ndarray:
    f = flat - flat.mean(1, keepdims=True)
    t = template - template.mean()
    den = np.linalg.norm(f, axis=1) * np.linalg.norm(t)
    return np.where(den > 0, f @ t / np.where(den > 0, den, 1.0), 0.0)


def _width_ms(slope: np.ndarray, fs: float) -> np.ndarray:
    """QRS width: the span over which the summed absolute slope stays above 20% of its peak."""
    peak = slope.max(1, keepdims=True)
    above = slope >= 0.2 * np.where(peak > 0, peak, 1.0)
    first = above.argmax(1)
    last = slope.shape[1] - 1 - above[:, ::-1].argmax(1)
    return (last - first + 1) / fs * 1000.0


def classify_beats(
    times_s: np.ndarray,
    features: dict[str, np.ndarray],
    confidence: np.ndarray,
    rules: BeatRules = BeatRules(),
) -> np.ndarray:
    """Classes (N, S, V, Q) of the beats at ``times_s`` (sorted, the whole record) from their
    :func:`beat_features` and detection confidence; see the module."""
    import pandas as pd

    t = np.asarray(times_s, dtype=np.float64)
    nb = len(t)
    cls = np.array(["N"] * nb, dtype="<U1")
    if nb == 0:
        return cls
    rr_prev = np.diff(t, prepend=np.nan)
    rr_next = np.append(np.diff(t), np.nan)
    # the local RR: a centred running median of the intervals, the beat's own two left out by the median
    local = pd.Series(rr_prev).rolling(17, center=True, min_periods=3).median().to_numpy()
    local = np.where(np.isfinite(local), local, np.nanmedian(rr_prev) if nb > 1 else np.nan)
    prem = rr_prev / local
    corr = features["correlation"]
    wide = features["width_ms"] - features["dominant_width_ms"] >= rules.wide_ms
    unlike = corr < rules.unlike
    different = corr < rules.similar
    premature = prem < rules.premature
    v = unlike | (different & (wide | premature))
    s = ~v & premature & ~different & (rr_next >= rules.pause_after * rr_prev)
    cls[v] = "V"
    cls[s] = "S"
    q = (np.asarray(confidence) < rules.min_confidence) | ~np.isfinite(corr)
    cls[q] = "Q"
    return cls
