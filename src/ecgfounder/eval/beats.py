"""Beat-by-beat comparison with reference annotations, by ANSI/AAMI EC57's definitions.

A detected beat matches a reference beat when they lie within ``window_s`` (EC57: 150 ms) of each
other; each beat is matched at most once, closest pairs first. QRS detection: sensitivity
Se = TP / (TP + FN) and positive predictivity +P = TP / (TP + FP). Classes: the reference's
MIT-BIH symbols mapped to EC57's N, S, V, F, Q; for class C, Se = matched reference C beats
called C / matched reference C beats, +P = matched beats called C that are reference C / matched
beats called C (EC57 counts class performance over matched beats).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["EC57_CLASSES", "ec57_class", "match_beats", "BeatScore", "score_beats"]

# MIT-BIH beat symbols to EC57 classes (non-beat annotations map to None)
EC57_CLASSES: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}


def ec57_class(symbol: str) -> str | None:
    """The EC57 class of a MIT-BIH beat symbol (None: not a beat, e.g. ``+`` rhythm changes)."""
    return EC57_CLASSES.get(symbol)


def match_beats(reference: np.ndarray, detected: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i_ref, i_det)`` of matched beats: within ``window`` (same unit as the
    times), each beat at most once, closest pairs first."""
    ref = np.asarray(reference, dtype=np.float64)
    det = np.asarray(detected, dtype=np.float64)
    if len(ref) == 0 or len(det) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(det)
    ds = det[order]
    # candidate pairs: each reference beat with its nearest detections on both sides
    pos = np.searchsorted(ds, ref)
    cand = []
    for k in (-2, -1, 0, 1):
        j = pos + k
        ok = (j >= 0) & (j < len(ds))
        i = np.flatnonzero(ok)
        d = np.abs(ref[i] - ds[j[ok]])
        near = d <= window
        cand.append(np.stack([i[near], j[ok][near], d[near]], axis=1) if near.any() else np.zeros((0, 3)))
    pairs = np.concatenate(cand)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0], pairs[:, 2]))]
    used_r, used_d = set(), set()
    out_r, out_d = [], []
    for r, d, _ in pairs:
        r, d = int(r), int(d)
        if r in used_r or d in used_d:
            continue
        used_r.add(r)
        used_d.add(d)
        out_r.append(r)
        out_d.append(int(order[d]))
    idx = np.argsort(out_r)
    return np.asarray(out_r, np.int64)[idx], np.asarray(out_d, np.int64)[idx]


@dataclass
class BeatScore:
    """QRS detection and per-class performance of one comparison (or a sum of several)."""

    tp: int = 0
    fn: int = 0
    fp: int = 0
    # per class: [reference C called C, reference C matched, called C matched]
    classes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def se(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def class_se(self, c: str) -> float:
        hit, ref, _ = self.classes.get(c, [0, 0, 0])
        return hit / ref if ref else float("nan")

    def class_ppv(self, c: str) -> float:
        hit, _, called = self.classes.get(c, [0, 0, 0])
        return hit / called if called else float("nan")

    def __add__(self, other: BeatScore) -> BeatScore:
        keys = set(self.classes) | set(other.classes)
        return BeatScore(
            self.tp + other.tp,
            self.fn + other.fn,
            self.fp + other.fp,
            {
                k: [a + b for a, b in zip(self.classes.get(k, [0, 0, 0]), other.classes.get(k, [0, 0, 0]))]
                for k in keys
            },
        )


def score_beats(
    ref_times: np.ndarray,
    det_times: np.ndarray,
    *,
    window_s: float = 0.15,
    ref_classes: np.ndarray | None = None,
    det_classes: np.ndarray | None = None,
) -> BeatScore:
    """Compare detected beats with reference beats (times in seconds); classes optional (EC57
    letters on both sides)."""
    ri, di = match_beats(ref_times, det_times, window_s)
    score = BeatScore(len(ri), len(ref_times) - len(ri), len(det_times) - len(ri))
    if ref_classes is not None and det_classes is not None:
        rc = np.asarray(ref_classes)[ri]
        dc = np.asarray(det_classes)[di]
        for c in ("N", "S", "V", "F", "Q"):
            score.classes[c] = [
                int(((rc == c) & (dc == c)).sum()),
                int((rc == c).sum()),
                int((dc == c).sum()),
            ]
    return score
