"""Quality checks run on every record before it reaches a model.

Each finding is a short flag (``"flat:V3"``, ``"clipped:II"``, ``"nan_interpolated:I"``,
``"amplitude_implausible:V1"``, ``"short:6.2s"``, and the noise, artefact and electrode flags of
:mod:`ecgfounder.signal.artifacts`: ``"noise:V2"``, ``"baseline_wander:I"``, ``"powerline_50hz:II"``,
``"motion_artifact:I"``, ``"flat_segment:V4"``, ``"limb_reversal:LA/RA"``) added to ``record.flags``.
A record that cannot be used (all leads flat, a long run of missing values, too short to filter) raises
:class:`~ecgfounder.errors.ECGInputError` with the file name and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ECGInputError
from ..io.record import ECGRecord
from .artifacts import ArtifactThresholds, artifact_flags

__all__ = ["QualityThresholds", "check_quality", "window_quality"]


@dataclass(frozen=True)
class QualityThresholds:
    max_gap_s: float = 0.2  # NaN/inf runs up to this long are interpolated
    flat_ptp_mv: float = 0.01  # peak-to-peak below this: flat / disconnected lead
    clip_fraction: float = 0.01  # share of samples pinned at the extreme values
    implausible_ptp_mv: float = 30.0  # robust peak-to-peak above this: wrong units (uV read as mV?)
    min_duration_s: float = 1.0  # shorter records are unusable
    #: noise, artefact and electrode checks (:mod:`ecgfounder.signal.artifacts`)
    artifacts: ArtifactThresholds = field(default_factory=ArtifactThresholds)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the True runs of a 1-D mask."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2]))


def check_quality(
    record: ECGRecord, thresholds: QualityThresholds = QualityThresholds(), *, window_s: float | None = None
) -> ECGRecord:
    """Return the record with flags added and short gaps repaired; raise when it is unusable."""
    t = thresholds
    sig = record.signal.astype(np.float64)
    flags = list(record.flags)
    notes = list(record.notes)
    if record.duration_s < t.min_duration_s or record.n_samples < 32:
        raise ECGInputError(
            record.name,
            f"record is {record.duration_s:.2f} s long; at least {t.min_duration_s:g} s is needed",
        )
    max_gap = max(1, int(round(t.max_gap_s * record.fs)))
    repaired = False
    for i, lead in enumerate(record.leads):
        bad = ~np.isfinite(sig[i])
        if not bad.any():
            continue
        runs = _runs(bad)
        longest = max(b - a for a, b in runs)
        if bad.all():
            raise ECGInputError(record.name, f"lead {lead} holds no valid samples")
        if longest > max_gap:
            raise ECGInputError(
                record.name,
                f"lead {lead} has a gap of {longest / record.fs:.2f} s of "
                f"missing values (at most {t.max_gap_s:g} s is repaired)",
            )
        good = np.flatnonzero(~bad)
        sig[i, bad] = np.interp(np.flatnonzero(bad), good, sig[i, good])
        flags.append(f"nan_interpolated:{lead}")
        repaired = True
    flat = []
    for i, lead in enumerate(record.leads):
        x = sig[i]
        ptp = float(x.max() - x.min())
        if ptp < t.flat_ptp_mv:
            flat.append(lead)
            flags.append(f"flat:{lead}")
            continue
        lo, hi = x.min(), x.max()
        pinned = np.count_nonzero((x == lo) | (x == hi)) / x.size
        if pinned > t.clip_fraction:
            flags.append(f"clipped:{lead}")
        q_lo, q_hi = np.percentile(x, [0.5, 99.5])
        if q_hi - q_lo > t.implausible_ptp_mv:
            flags.append(f"amplitude_implausible:{lead}")
    if len(flat) == record.n_leads:
        raise ECGInputError(record.name, "every lead is flat (disconnected or empty recording)")
    flags += artifact_flags(sig, record.fs, record.leads, t.artifacts, skip=flat)
    if window_s is not None and record.duration_s < window_s:
        flags.append(f"short:{record.duration_s:.1f}s")
    out = record.replace(
        signal=sig.astype(np.float32) if repaired else record.signal, flags=flags, notes=notes
    )
    return out


def window_quality(x: np.ndarray, thresholds: QualityThresholds = QualityThresholds()) -> str:
    """One window's usability for a long-record analysis, by the thresholds :func:`check_quality`
    uses: ``gap`` (missing values), ``flat (lead off)`` (a lead's peak-to-peak under
    ``flat_ptp_mv``), ``implausible amplitude`` (a robust 0.5-99.5 % range over
    ``implausible_ptp_mv``) or ``ok``. An empty window is a gap."""
    if x.size == 0 or not np.isfinite(x).all():
        return "gap"
    if float(np.ptp(x, axis=-1).min()) < thresholds.flat_ptp_mv:
        return "flat (lead off)"
    robust = float(np.percentile(x, 99.5, axis=-1).max() - np.percentile(x, 0.5, axis=-1).min())
    if robust > thresholds.implausible_ptp_mv:
        return "implausible amplitude"
    return "ok"
