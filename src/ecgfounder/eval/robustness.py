"""Graded corruptions of real ECGs: what real devices do to a recording, at set severities.

Each corruption takes a record and a severity and returns a new record; the noise is drawn from
``rng`` so a benchmark is repeatable. Additive noises are scaled to a signal-to-noise ratio (dB)
against the clean lead's variance in the ECG band (0.67-40 Hz), as the MIT-BIH Noise Stress Test
Database does (24 to -6 dB); artefacts with a shape are scaled to the lead's typical beat amplitude
(median peak-to-peak of 1 s of the ECG band). The noise models are synthetic stand-ins for the
recorded ones (NSTDB's ``bw``, ``ma``, ``em`` are not at hand here):

- ``baseline_wander``: two slow sinusoids (0.05-0.5 Hz, random phases) with a peak-to-peak of
  ``severity`` x the beat amplitude;
- ``powerline_50hz`` / ``powerline_60hz``: a mains sinusoid (frequency off by up to 0.2 Hz, a
  little amplitude drift) at ``severity`` dB SNR;
- ``white_noise``: Gaussian noise over the whole band at ``severity`` dB SNR;
- ``emg``: muscle noise, Gaussian noise band-limited to 20-150 Hz (to 0.45 fs) with a slowly varying
  envelope, at ``severity`` dB SNR;
- ``motion``: three electrode-motion bursts (0.3-1 s of 1-8 Hz noise under a smooth window) with
  a peak-to-peak of ``severity`` x the beat amplitude;
- ``lead_off``: one lead (the first of a single-lead record, a random one otherwise) flat for
  ``severity`` seconds (``inf``: the whole record), as when an electrode comes off;
- ``gain``: every lead multiplied by ``severity`` (x1000: volts taken for millivolts... the units
  error a flag must catch; a pure gain change is invisible to the z-scored model);
- ``inverted``: every lead multiplied by -1 (a watch worn on the other wrist; a single-lead
  record's LA/RA reversal);
- ``limb_swap``: a limb-electrode reversal on 12-lead records (``LA/RA``, ``RA/LL``, ``LA/LL``):
  the limb leads recomputed as the swapped electrodes would have produced them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..io.record import ECGRecord

__all__ = ["CORRUPTIONS", "SEVERITIES", "MOST_SEVERE", "corrupt", "swap_limb_electrodes", "beat_amplitude"]


def _band(x: np.ndarray, fs: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    if fs / 2 > 42:
        return sosfiltfilt(butter(2, [0.67, 40.0], "bandpass", fs=fs, output="sos"), x, axis=-1)
    return sosfiltfilt(butter(2, 0.67, "highpass", fs=fs, output="sos"), x, axis=-1)


def beat_amplitude(signal: np.ndarray, fs: float) -> np.ndarray:
    """Per lead: median peak-to-peak of 1 s stretches of the ECG band (about the QRS amplitude)."""
    band = _band(np.asarray(signal, dtype=np.float64), fs)
    w = int(round(fs))
    m = band.shape[-1] // w
    seg = band[:, : m * w].reshape(band.shape[0], m, w)
    return np.maximum(np.median(seg.max(-1) - seg.min(-1), axis=-1), 1e-6)


def _noise_scale(x: np.ndarray, fs: float, snr_db: float) -> np.ndarray:
    power = _band(x, fs).var(axis=-1)
    return np.sqrt(power * 10 ** (-snr_db / 10))[:, None]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(v.std(axis=-1, keepdims=True), 1e-12)


def _wander(x: np.ndarray, fs: float, k: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(x.shape[-1]) / fs
    w = sum(
        rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * rng.uniform(lo, hi) * t + rng.uniform(0, 2 * np.pi))
        for lo, hi in ((0.05, 0.15), (0.15, 0.5))
    )
    w = w / max(np.ptp(w), 1e-12)
    return x + k * beat_amplitude(x, fs)[:, None] * w[None, :]


def _powerline(f0: float) -> Callable[..., np.ndarray]:
    def add(x: np.ndarray, fs: float, snr_db: float, rng: np.random.Generator) -> np.ndarray:
        if f0 >= fs / 2:
            return x
        t = np.arange(x.shape[-1]) / fs
        f = f0 + rng.uniform(-0.2, 0.2)
        drift = 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.02, 0.1) * t)
        amp = np.sqrt(2.0) * _noise_scale(x, fs, snr_db)
        return x + amp * drift * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))

    return add


def _white(x: np.ndarray, fs: float, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    return x + _noise_scale(x, fs, snr_db) * rng.standard_normal(x.shape)


def _emg(x: np.ndarray, fs: float, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    hi = min(150.0, 0.45 * fs)
    noise = sosfiltfilt(
        butter(4, [20.0, hi], "bandpass", fs=fs, output="sos"), rng.standard_normal(x.shape), axis=-1
    )
    t = np.arange(x.shape[-1]) / fs
    envelope = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi))
    return x + _noise_scale(x, fs, snr_db) * _unit(noise * envelope)


def _motion(x: np.ndarray, fs: float, k: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    n = x.shape[-1]
    out = x.copy()
    amp = beat_amplitude(x, fs)
    sos = butter(2, [1.0, 8.0], "bandpass", fs=fs, output="sos")
    for _ in range(3):
        length = int(rng.uniform(0.3, 1.0) * fs)
        start = int(rng.integers(0, max(1, n - length)))
        burst = sosfiltfilt(sos, rng.standard_normal((x.shape[0], length + int(fs))), axis=-1)[
            :, int(fs) // 2 :
        ][:, :length]
        burst = burst * np.hanning(length)[None, :]
        burst = burst / np.maximum(np.ptp(burst, axis=-1, keepdims=True), 1e-12)
        out[:, start : start + length] += k * amp[:, None] * burst
    return out


def _lead_off(x: np.ndarray, fs: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    out = x.copy()
    lead = 0 if x.shape[0] == 1 else int(rng.integers(0, x.shape[0]))
    n = x.shape[-1]
    length = n if not np.isfinite(seconds) else min(n, int(seconds * fs))
    start = int(rng.integers(0, n - length + 1))
    out[lead, start : start + length] = x[lead, start] if length < n else 0.0
    return out


def _gain(x: np.ndarray, fs: float, factor: float, rng: np.random.Generator) -> np.ndarray:
    return x * factor


def _inverted(x: np.ndarray, fs: float, severity: float, rng: np.random.Generator) -> np.ndarray:
    return -x


def swap_limb_electrodes(signal: np.ndarray, leads: list[str] | tuple[str, ...], swap: str) -> np.ndarray:
    """The limb leads as a reversal of two limb electrodes (``LA/RA``, ``RA/LL``, ``LA/LL``) would
    have recorded them; chest leads unchanged (the Wilson terminal averages all three)."""
    pos = {lead: i for i, lead in enumerate(leads)}
    if not {"I", "II"} <= pos.keys():
        raise ValueError("a limb-electrode reversal needs leads I and II")
    i, ii = signal[pos["I"]], signal[pos["II"]]
    # electrode potentials with RA as reference: RA = 0, LA = I, LL = II
    elec = {"RA": np.zeros_like(i), "LA": i, "LL": ii}
    a, b = swap.split("/")
    elec[a], elec[b] = elec[b], elec[a]
    ra, la, ll = elec["RA"], elec["LA"], elec["LL"]
    new = {
        "I": la - ra,
        "II": ll - ra,
        "III": ll - la,
        "aVR": ra - (la + ll) / 2,
        "aVL": la - (ra + ll) / 2,
        "aVF": ll - (ra + la) / 2,
    }
    out = signal.copy()
    for name, value in new.items():
        if name in pos:
            out[pos[name]] = value
    return out


def _limb_swap(swap: str) -> Callable[..., np.ndarray]:
    def apply(
        x: np.ndarray, fs: float, severity: float, rng: np.random.Generator, leads: tuple[str, ...] = ()
    ) -> np.ndarray:
        return swap_limb_electrodes(x, list(leads), swap)

    apply.needs_leads = True  # type: ignore[attr-defined]
    return apply


#: name -> function(signal, fs, severity, rng) -> signal
CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    "baseline_wander": _wander,
    "powerline_50hz": _powerline(50.0),
    "powerline_60hz": _powerline(60.0),
    "white_noise": _white,
    "emg": _emg,
    "motion": _motion,
    "lead_off": _lead_off,
    "gain": _gain,
    "inverted": _inverted,
    "limb_swap_LA/RA": _limb_swap("LA/RA"),
    "limb_swap_RA/LL": _limb_swap("RA/LL"),
    "limb_swap_LA/LL": _limb_swap("LA/LL"),
}
_SNR = (24.0, 12.0, 6.0, 0.0, -6.0)
#: the graded severities of each corruption, mildest first (the last is the most severe)
SEVERITIES: dict[str, tuple[float, ...]] = {
    "baseline_wander": (0.5, 1.0, 2.0, 4.0),
    "powerline_50hz": _SNR,
    "powerline_60hz": _SNR,
    "white_noise": _SNR,
    "emg": _SNR,
    "motion": (2.0, 5.0, 10.0, 20.0),
    "lead_off": (1.0, 2.5, 5.0, float("inf")),
    "gain": (0.001, 0.1, 0.5, 2.0, 10.0, 1000.0),
    "inverted": (1.0,),
    "limb_swap_LA/RA": (1.0,),
    "limb_swap_RA/LL": (1.0,),
    "limb_swap_LA/LL": (1.0,),
}
#: the level(s) a quality flag must catch
MOST_SEVERE: dict[str, tuple[float, ...]] = {k: (v[-1],) for k, v in SEVERITIES.items()}
MOST_SEVERE["gain"] = (0.001, 1000.0)


def corrupt(record: ECGRecord, name: str, severity: float, rng: np.random.Generator | int = 0) -> ECGRecord:
    """``record`` with corruption ``name`` at ``severity`` (see the module); a new record, the
    corruption noted in its ``notes``."""
    fn = CORRUPTIONS[name]
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    x = np.asarray(record.signal, dtype=np.float64)
    kwargs: dict[str, Any] = {"leads": tuple(record.leads)} if getattr(fn, "needs_leads", False) else {}
    out = fn(x, record.fs, severity, rng, **kwargs)
    return record.replace(
        signal=out.astype(np.float32), notes=[*record.notes, f"corrupted: {name} {severity:g}"]
    )
