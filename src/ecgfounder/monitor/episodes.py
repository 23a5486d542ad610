"""From window probabilities to episodes and burden (pure functions, no model, no files).

Windows overlap (a 10 s window every ``stride`` s); each window *owns* the ``stride`` seconds
around its centre, so the owned spans tile the recording once. A label's probability is smoothed
over neighbouring windows (a running median), then an episode opens where it reaches ``on`` and
stays open until it falls below ``off`` (hysteresis: no flicker around one threshold). Excluded
windows (noise, lead off, unreadable) close an episode and count as neither in nor out of it.
Episodes separated by less than ``merge_gap_s`` are joined; episodes shorter than
``min_duration_s`` are dropped. Burden is the share of *analysed* time (owned spans of windows
not excluded) inside a label's episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EpisodeRules", "Episode", "find_episodes", "owned_spans", "burden", "expected_burden"]


@dataclass(frozen=True)
class EpisodeRules:
    """How episodes are drawn from window probabilities (defaults documented in docs/monitor.md)."""

    on: float = 0.5  # the smoothed probability at which an episode opens
    off: float = 0.35  # ... and below which it closes
    smooth_windows: int = 3  # running median over this many windows (1: none)
    min_duration_s: float = 30.0  # shorter episodes are dropped
    # episodes closer than this are joined: a non-AF gap shorter than the shortest episode kept is
    # not an episode of its own (issue 30: 10 s split 47 true episodes into 51 on held-out records)
    merge_gap_s: float = 30.0
    # RR irregularity as a second opinion for the labels in rr_labels (0: the model alone):
    # score = (1 - rr_weight) * p + rr_weight * sigmoid((rr_cv - rr_cv_center) / rr_cv_scale)
    rr_weight: float = 0.0
    rr_cv_center: float = 0.10
    rr_cv_scale: float = 0.03
    rr_labels: tuple[str, ...] = ("AF",)

    def __post_init__(self) -> None:
        if not 0 <= self.off <= self.on <= 1:
            raise ValueError(f"need 0 <= off <= on <= 1 (got on={self.on}, off={self.off})")
        if self.smooth_windows < 1:
            raise ValueError("smooth_windows must be at least 1")
        if not 0 <= self.rr_weight <= 1 or self.rr_cv_scale <= 0:
            raise ValueError("need 0 <= rr_weight <= 1 and rr_cv_scale > 0")
        object.__setattr__(self, "rr_labels", tuple(self.rr_labels))


def fuse_rr(label: str, probs: np.ndarray, rr_cv: np.ndarray, rules: EpisodeRules) -> np.ndarray:
    """The episode score of ``label`` per window: the model's probability, mixed with the RR
    irregularity (coefficient of variation of the RR intervals in the window) for the labels in
    ``rules.rr_labels`` when ``rules.rr_weight`` > 0. Windows without a usable RR series keep the
    model's probability."""
    p = np.asarray(probs, dtype=np.float64)
    if label not in rules.rr_labels or rules.rr_weight <= 0:
        return p
    cv = np.asarray(rr_cv, dtype=np.float64)
    irregular = 1.0 / (1.0 + np.exp(-(cv - rules.rr_cv_center) / rules.rr_cv_scale))
    fused = (1 - rules.rr_weight) * p + rules.rr_weight * irregular
    return np.where(np.isfinite(cv), fused, p)


@dataclass
class Episode:
    label: str
    start_s: float
    end_s: float
    mean_probability: float
    max_probability: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def owned_spans(starts_s: np.ndarray, window_s: float, stride_s: float, duration_s: float) -> np.ndarray:
    """(W, 2) seconds each window owns: ``stride`` around its centre, clipped to the recording and
    to the neighbours' spans (the first and last windows reach the ends)."""
    centres = np.asarray(starts_s, dtype=np.float64) + window_s / 2
    if len(centres) == 0:
        return np.zeros((0, 2))
    edges = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [duration_s]])
    return np.stack([edges[:-1], edges[1:]], axis=1)


def _smooth(p: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return p
    out = p.copy()
    half = k // 2
    for i in range(len(p)):
        if not valid[i]:
            continue
        lo, hi = max(0, i - half), min(len(p), i + half + 1)
        neighbours = p[lo:hi][valid[lo:hi]]
        out[i] = float(np.median(neighbours))
    return out


def find_episodes(
    label: str, spans: np.ndarray, probs: np.ndarray, valid: np.ndarray, rules: EpisodeRules = EpisodeRules()
) -> list[Episode]:
    """Episodes of ``label`` from per-window ``probs`` (W,), ``valid`` (W,) and owned ``spans``."""
    probs = np.asarray(probs, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    smooth = _smooth(probs, valid, rules.smooth_windows)
    runs: list[list[int]] = []
    current: list[int] | None = None
    for i in range(len(probs)):
        if not valid[i]:
            current = None
            continue
        if current is None:
            if smooth[i] >= rules.on:
                current = [i]
                runs.append(current)
        elif smooth[i] >= rules.off:
            current.append(i)
        else:
            current = None
    merged: list[list[int]] = []
    for run in runs:
        if merged and spans[run[0], 0] - spans[merged[-1][-1], 1] < rules.merge_gap_s:
            gap_valid = [j for j in range(merged[-1][-1] + 1, run[0]) if valid[j]]
            merged[-1].extend(gap_valid)
            merged[-1].extend(run)
        else:
            merged.append(list(run))
    out = []
    for run in merged:
        start, end = float(spans[run[0], 0]), float(spans[run[-1], 1])
        if end - start < rules.min_duration_s:
            continue
        p = probs[run]
        out.append(Episode(label, start, end, float(p.mean()), float(p.max())))
    return out


def burden(episodes: list[Episode], spans: np.ndarray, valid: np.ndarray) -> float:
    """Share of analysed time inside ``episodes`` (0 when nothing was analysed)."""
    analysed = float(sum(b - a for (a, b), v in zip(spans, valid) if v))
    if analysed <= 0:
        return 0.0
    inside = 0.0
    for (a, b), v in zip(spans, valid):
        if not v:
            continue
        for e in episodes:
            inside += max(0.0, min(b, e.end_s) - max(a, e.start_s))
    return inside / analysed


def expected_burden(probs: np.ndarray, spans: np.ndarray, valid: np.ndarray) -> float:
    """The label's expected share of analysed time: each analysed window's probability times the
    time it owns, over the analysed time. No threshold, no minimum duration: episodes lose the
    short or uncertain stretches a rule drops, this estimate keeps them in proportion (an
    unbiased burden when the probabilities are calibrated)."""
    p = np.nan_to_num(np.asarray(probs, dtype=np.float64))
    v = np.asarray(valid, dtype=bool)
    owned = (spans[:, 1] - spans[:, 0]) * v
    analysed = float(owned.sum())
    return float((p * owned).sum() / analysed) if analysed > 0 else 0.0
