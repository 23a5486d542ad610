"""Clinical-paper evaluation of predicted probabilities against labels, with bootstrap 95% CIs.

Per label: AUROC, AUPRC (average precision), and at a threshold (Youden-optimal on these data,
fixed, or the model's stored one) sensitivity, specificity, PPV, NPV and F1; calibration (Brier
score, expected calibration error). Each metric gets a percentile bootstrap CI over records (or
patients when ids are given), the threshold held fixed. Labels with no positives (or no negatives)
are reported as such and left out of the macro means, never averaged in as 0 or NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .bootstrap import RankedScores, resample_weights, weighted_confusion
from .calibration import apply_temperature, calibration, fit_temperature
from .report_files import write_tables

__all__ = [
    "evaluate_arrays",
    "evaluate_tables",
    "evaluate_joined",
    "join_tables",
    "Joined",
    "EvalReport",
    "youden_threshold",
    "calibration",
    "fit_temperature",
    "infer_task",
    "MIN_COUNT",
]

_POINT_METRICS = ("auroc", "auprc", "sensitivity", "specificity", "ppv", "npv", "f1")


def youden_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold maximising sensitivity + specificity - 1 (predict positive at >= t)."""
    order = np.argsort(-score, kind="mergesort")
    s, yy = score[order], y[order].astype(bool)
    pos, neg = yy.sum(), (~yy).sum()
    if pos == 0 or neg == 0:
        return 0.5
    tp = np.cumsum(yy)
    fp = np.cumsum(~yy)
    last = np.concatenate([np.flatnonzero(np.diff(s)), [len(s) - 1]])  # end of each tie group
    j = tp[last] / pos - fp[last] / neg
    return float(s[last[int(np.argmax(j))]])


def _rates(c: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
        }


@dataclass
class EvalReport:
    labels: list[dict[str, Any]]
    macro: dict[str, Any]
    micro: dict[str, Any]
    n_records: int
    n_boot: int
    level: str
    threshold_rule: str
    extra: dict[str, Any] = field(default_factory=dict)
    arrays: tuple[np.ndarray, np.ndarray, list[str]] | None = field(default=None, repr=False)
    #: with ``keep_draws``: label (and ``"macro"``) -> metric -> the bootstrap values, in draw order
    draws: dict[str, dict[str, np.ndarray]] | None = field(default=None, repr=False)

    @property
    def thresholds(self) -> list[float]:
        """The threshold of each label (NaN for a label without positives or negatives)."""
        return [float(r.get("threshold", float("nan"))) for r in self.labels]

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in row.items() if k != "reliability"} for row in self.labels])

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.n_records,
            "bootstrap": self.n_boot,
            "level": self.level,
            "threshold_rule": self.threshold_rule,
            "macro": self.macro,
            "micro": self.micro,
            "labels": self.labels,
            **self.extra,
        }

    def to_markdown(self) -> str:
        def fmt(row: Mapping[str, Any], key: str) -> str:
            v = row.get(key)
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                return "n/a"
            lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
            ci = f" ({lo:.3f}-{hi:.3f})" if lo is not None and np.isfinite(lo) else ""
            return f"{v:.3f}{ci}"

        head = (
            "| label | n+ | n- | AUROC | AUPRC | threshold | sensitivity | specificity | PPV | NPV | F1 |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        )
        lines = []
        for r in self.labels:
            r = {**r, "label": f"{r['label']} †" if r.get("low_count") else r["label"]}
            if r.get("status"):
                lines.append(
                    f"| {r['label']} | {r['n_pos']} | {r['n_neg']} | {r['status']} |  |  |  |  |  |  |  |"
                )
                continue
            lines.append(
                f"| {r['label']} | {r['n_pos']} | {r['n_neg']} | "
                + " | ".join(
                    [fmt(r, "auroc"), fmt(r, "auprc"), f"{r['threshold']:.3f}"]
                    + [fmt(r, k) for k in ("sensitivity", "specificity", "ppv", "npv", "f1")]
                )
                + " |"
            )
        macro = (
            f"| **macro** ({self.macro['n_labels']} labels) |  |  | {fmt(self.macro, 'auroc')} | "
            f"{fmt(self.macro, 'auprc')} |  |  |  |  |  | {fmt(self.macro, 'f1')} |"
        )
        tail = [macro]
        if "auroc" in self.micro:
            tail.append(
                f"| **micro** |  |  | {fmt(self.micro, 'auroc')} | {fmt(self.micro, 'auprc')} |  |  |  |  | "
                f" |  |"
            )
        notes = []
        if self.macro.get("labels_with_low_counts"):
            notes.append(
                f"† fewer than {self.macro['min_count']} positives or negatives: intervals unreliable; "
                + ("included in" if self.macro.get("low_counts_included") else "left out of")
                + " the macro means."
            )
        if self.micro.get("note"):
            notes.append(f"Micro average {self.micro['note']}.")
        if any(
            str(r.get(f"{k}_interval", "")).startswith("wilson") for r in self.labels for k in _PROPORTIONS
        ):
            notes.append(
                "Sensitivity, specificity, PPV and NPV on fewer than "
                f"{MIN_COUNT} cases, or whose bootstrap interval had zero width, carry Wilson score "
                "intervals of their counts."
            )
        if any(
            str(r.get(f"{k}_interval", "")).startswith("none") for r in self.labels for k in _POINT_METRICS
        ):
            notes.append(
                "Values printed without an interval: every bootstrap resample gave the same value "
                "(too few cases, or perfect separation: a bootstrap cannot give an interval)."
            )
        top = self.extra.get("most_probable_class")
        top_text = ""
        if top:

            def cell(m: Mapping[str, float]) -> str:
                ci = f" ({m['lo']:.3f}-{m['hi']:.3f})" if np.isfinite(m.get("lo", np.nan)) else ""
                return f"{m['value']:.3f}{ci}"

            top_text = (
                "\nThe most probable class as the prediction (no threshold):\n\n"
                "| metric | value (95% CI) |\n| --- | --- |\n"
                + (
                    f"| **CinC 2017 challenge score** (mean F1 of normal, AF, other) | "
                    f"{cell(top['challenge_f1'])} |\n"
                    if "challenge_f1" in top
                    else ""
                )
                + f"| accuracy | {cell(top['accuracy'])} |\n"
                + "".join(f"| F1 {name} | {cell(m)} |\n" for name, m in top["f1"].items())
            )
        return (
            f"{self.n_records} records; 95% CIs from {self.n_boot} bootstrap resamples of {self.level}s; "
            f"thresholds of the table (sensitivity to F1): {self.threshold_rule}.\n\n"
            + head
            + "\n".join(lines + tail)
            + "\n"
            + ("\n" + "\n".join(notes) + "\n" if notes else "")
            + top_text
        )

    def write(self, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
        """metrics.csv, metrics.json, metrics.md and (``plots``) roc.png, pr.png, reliability.png."""
        out = Path(out_dir)
        paths = write_tables(self, out)
        if plots and self.arrays is not None:
            try:
                from .plots import plot_curves
            except ImportError:  # pragma: no cover - matplotlib comes with wfdb
                return paths
            y, p, labels = self.arrays
            paths.update(plot_curves(y, p, labels, out))
        return paths


#: Labels with fewer positives or negatives than this are marked and left out of macro means by
#: default: their intervals say little (one positive gives sensitivity 1.000 (1.000-1.000)).
MIN_COUNT = 10


#: The CinC 2017 challenge's score: the mean F1 of these classes at the most probable class.
CINC2017_SCORED = ("normal", "AF", "other")


class _TopClass:
    """Metrics of the most probable class (mutually exclusive classes): accuracy, F1 per class and,
    for CinC 2017's classes, the challenge score (mean F1 of normal, AF and other), with bootstrap
    draws taken on the same resamples as every other metric."""

    def __init__(self, y: np.ndarray, probs: np.ndarray, labels: list[str]) -> None:
        n, k = y.shape
        self.labels = labels
        truth = y.astype(bool)
        guess = np.eye(k, dtype=bool)[probs.argmax(1)]
        # per class: TP, FP, FN counts as one matrix product with the resampling weights
        self.cells = np.concatenate([truth & guess, ~truth & guess, truth & ~guess], axis=1).astype(
            np.float32
        )
        self.correct = (truth & guess).any(1).astype(np.float32)
        self.scored = (
            [labels.index(c) for c in CINC2017_SCORED] if set(labels) >= set(CINC2017_SCORED) else None
        )
        self.draws: dict[str, list[np.ndarray]] = {"accuracy": [], "f1": [], "challenge_f1": []}
        self.point = self._metrics(np.ones((1, n), dtype=np.float32))

    def _metrics(self, w: np.ndarray) -> dict[str, np.ndarray]:
        k = len(self.labels)
        c = (w @ self.cells).astype(np.float64)
        tp, fp, fn = c[:, :k], c[:, k : 2 * k], c[:, 2 * k :]
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)  # as scikit-learn's default
            acc = (w @ self.correct) / w.sum(1)
        out = {"accuracy": acc, "f1": f1}
        if self.scored is not None:
            out["challenge_f1"] = f1[:, self.scored].mean(1)
        return out

    def draw(self, w: np.ndarray) -> None:
        for key, value in self._metrics(w).items():
            self.draws[key].append(value)

    def summary(self, percentile: Any) -> dict[str, Any]:
        def interval(values: list[np.ndarray]) -> tuple[float, float]:  # no zero-width interval
            lo, hi = percentile(values)
            return (lo, hi) if not (np.isfinite(lo) and hi - lo < 1e-12) else (float("nan"), float("nan"))

        out: dict[str, Any] = {"rule": "the most probable class (no threshold)"}
        lo, hi = interval(self.draws["accuracy"])
        out["accuracy"] = {"value": float(self.point["accuracy"][0]), "lo": lo, "hi": hi}
        f1_draws = (
            np.concatenate(self.draws["f1"]) if self.draws["f1"] else np.full((1, len(self.labels)), np.nan)
        )
        out["f1"] = {}
        for j, name in enumerate(self.labels):
            lo, hi = interval([f1_draws[:, j]])
            out["f1"][name] = {"value": float(self.point["f1"][0, j]), "lo": lo, "hi": hi}
        if self.scored is not None:
            lo, hi = interval(self.draws["challenge_f1"])
            out["challenge_f1"] = {
                "value": float(self.point["challenge_f1"][0]),
                "lo": lo,
                "hi": hi,
                "definition": "CinC 2017 challenge score: mean F1 of normal, AF and other, "
                "each record's most probable class its prediction",
            }
        return out


#: The counts behind each proportion: (successes, trials) from the confusion cells.
_PROPORTIONS = {
    "sensitivity": ("tp", ("tp", "fn")),
    "specificity": ("tn", ("tn", "fp")),
    "ppv": ("tp", ("tp", "fp")),
    "npv": ("tn", ("tn", "fn")),
}


def wilson_interval(successes: float, trials: float, ci: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: honest at small ``trials`` and at 0 or 1
    (5 of 5 gives 0.566-1.000 where a bootstrap gives 1.000-1.000)."""
    from scipy.stats import norm

    if trials <= 0:
        return float("nan"), float("nan")
    z = float(norm.ppf(1 - (1 - ci) / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _honest_interval(row: dict[str, Any], key: str, conf: Mapping[str, float], ci: float) -> None:
    """Replace a bootstrap interval that says nothing. A proportion (sensitivity, specificity, PPV,
    NPV) whose bootstrap interval has zero width (every resample agrees: 5 of 5 positives found
    gives 1.000 (1.000-1.000)) or rests on fewer than MIN_COUNT cases gets the Wilson score
    interval of its counts (``{key}_interval: "wilson"``); any other metric with a zero-width
    interval gets none (``{key}_interval: "none: ..."``), rather than a false certainty."""
    lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    degenerate = lo is not None and np.isfinite(lo) and hi - lo < 1e-12
    if key in _PROPORTIONS:
        hit, (a, b) = _PROPORTIONS[key]
        trials = conf[a] + conf[b]
        if degenerate or trials < MIN_COUNT:
            row[f"{key}_lo"], row[f"{key}_hi"] = wilson_interval(conf[hit], trials, ci)
            row[f"{key}_interval"] = "wilson"
    elif degenerate:
        row[f"{key}_lo"] = row[f"{key}_hi"] = float("nan")
        row[f"{key}_interval"] = "none: every bootstrap resample gave the same value (too few cases)"


def evaluate_arrays(
    y: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    *,
    thresholds: str | float | Sequence[float] = "youden",
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
    ci: float = 0.95,
    chunk: int = 100,
    min_count: int = MIN_COUNT,
    include_low_counts: bool = False,
    keep_draws: bool = False,
) -> EvalReport:
    """Evaluate ``probs`` (N, L) against 0/1 ``y`` (N, L). ``thresholds``: ``"youden"`` (chosen on
    these data per label), a number for all labels, or one per label. ``groups``: patient ids for a
    patient-level bootstrap. Bootstrap resamples are processed ``chunk`` at a time. Labels with
    fewer than ``min_count`` positives or negatives are reported with ``low_count`` set and left
    out of the macro means unless ``include_low_counts``. When every record has exactly one label
    (mutually exclusive classes) no micro average is reported: it would pool complementary columns.
    ``keep_draws`` keeps every bootstrap value in ``report.draws`` (for differences between
    independently resampled reports, e.g. subgroups)."""
    y = np.asarray(y, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    n, n_labels = y.shape
    codes = None
    if groups is not None:
        _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    alpha = (1 - ci) / 2
    if isinstance(thresholds, str):
        rule = (
            "Youden-optimal on these data (chosen on the records they are scored on: thresholded metrics "
            "are optimistic; give thresholds chosen elsewhere, e.g. on validation data, with --thresholds)"
        )
        thr = np.array([youden_threshold(y[:, j], probs[:, j]) for j in range(n_labels)])
    elif np.isscalar(thresholds):
        rule = f"fixed at {float(thresholds):g}"  # type: ignore[arg-type]
        thr = np.full(n_labels, float(thresholds))  # type: ignore[arg-type]
    else:
        rule = "given per label (chosen elsewhere)"
        thr = np.asarray(thresholds, dtype=np.float64)
    valid = [(y[:, j].sum() > 0) and (y[:, j].sum() < n) for j in range(n_labels)]
    low = [min(y[:, j].sum(), n - y[:, j].sum()) < min_count for j in range(n_labels)]
    in_macro = [v and (include_low_counts or not lc) for v, lc in zip(valid, low)]
    exclusive = n_labels > 1 and bool(np.all(y.sum(1) == 1))

    # bootstrap draws, in chunks so memory stays bounded: per label and metric, B values
    boots: dict[str, list[np.ndarray]] = {k: [] for k in _POINT_METRICS}
    per_label: list[dict[str, list[np.ndarray]]] = [{k: [] for k in _POINT_METRICS} for _ in range(n_labels)]
    micro_boot: dict[str, list[np.ndarray]] = {"auroc": [], "auprc": []}
    flat_y, flat_p = y.ravel(), probs.ravel()
    ranked = [RankedScores(y[:, j], probs[:, j]) if valid[j] else None for j in range(n_labels)]
    pred = probs >= thr
    # one matrix product gives every label's weighted TP, FP, TN, FN for a chunk of resamples
    yb = y.astype(bool)
    cells = np.concatenate([yb & pred, ~yb & pred, ~yb & ~pred, yb & ~pred], axis=1).astype(np.float32)
    # micro-averaged CIs replicate every record's weight per label: only where that stays small
    micro_ci = n_labels > 1 and not exclusive and n * n_labels * min(chunk, n_boot) <= 50_000_000
    flat_ranked = RankedScores(flat_y, flat_p) if micro_ci else None
    # mutually exclusive classes: the most probable class is the prediction (no threshold at all)
    top = _TopClass(y, probs, list(labels)) if exclusive else None
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        w = resample_weights(n, b, rng, codes)
        if top is not None:
            top.draw(w)
        counts = (w @ cells).astype(np.float64)
        macro_acc = {k: np.zeros(b) for k in _POINT_METRICS}
        for j in range(n_labels):
            if ranked[j] is None:
                continue
            au, ap = ranked[j].auroc_ap(w)
            conf = {
                "tp": counts[:, j],
                "fp": counts[:, n_labels + j],
                "tn": counts[:, 2 * n_labels + j],
                "fn": counts[:, 3 * n_labels + j],
            }
            vals = {"auroc": au, "auprc": ap, **_rates(conf)}
            for k, v in vals.items():
                per_label[j][k].append(v)
                if in_macro[j]:
                    macro_acc[k] += v
        for k in _POINT_METRICS:
            boots[k].append(macro_acc[k] / max(1, sum(in_macro)))
        if flat_ranked is not None:
            au, ap = flat_ranked.auroc_ap(np.repeat(w, n_labels, axis=1))
            micro_boot["auroc"].append(au)
            micro_boot["auprc"].append(ap)
        done += b

    def interval(values: list[np.ndarray]) -> tuple[float, float]:
        v = np.concatenate(values) if values else np.array([np.nan])
        v = v[np.isfinite(v)]
        if not len(v):
            return float("nan"), float("nan")
        return float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))

    ones = np.ones((1, n), dtype=np.float32)
    rows = []
    for j, name in enumerate(labels):
        pos = int(y[:, j].sum())
        row: dict[str, Any] = {"label": name, "n_pos": pos, "n_neg": n - pos}
        if not valid[j]:
            row["status"] = "no positives" if pos == 0 else "no negatives"
            rows.append(row)
            continue
        au, ap = ranked[j].auroc_ap(ones)  # the label's scores were sorted once, above
        point = {
            "auroc": au[0],
            "auprc": ap[0],
            **{k: v[0] for k, v in _rates(weighted_confusion(y[:, j], pred[:, j], ones)).items()},
        }
        row["threshold"] = float(thr[j])
        if low[j]:
            row["low_count"] = True
        conf = weighted_confusion(y[:, j], pred[:, j], ones)
        for k in _POINT_METRICS:
            row[k] = float(point[k])
            row[f"{k}_lo"], row[f"{k}_hi"] = interval(per_label[j][k])
            _honest_interval(row, k, {c: float(v[0]) for c, v in conf.items()}, ci)
        cal = calibration(y[:, j], probs[:, j])
        row["brier"], row["ece"] = cal["brier"], cal["ece"]
        row["reliability"] = cal["reliability"]
        rows.append(row)
    ok = [r for r, m in zip(rows, in_macro) if m]
    macro: dict[str, Any] = {
        "n_labels": len(ok),
        "labels_without_positives": [r["label"] for r in rows if r.get("status")],
        "labels_with_low_counts": [r["label"] for r in rows if r.get("low_count")],
        "min_count": min_count,
        "low_counts_included": include_low_counts,
    }
    for k in _POINT_METRICS:
        macro[k] = float(np.mean([r[k] for r in ok])) if ok else float("nan")
        macro[f"{k}_lo"], macro[f"{k}_hi"] = interval(boots[k])
    micro: dict[str, Any] = {}
    if exclusive:
        micro["note"] = "not reported: every record has exactly one label (mutually exclusive classes)"
    elif n_labels > 1:
        ones_f = np.ones((1, n * n_labels), dtype=np.float32)
        au, ap = (flat_ranked or RankedScores(flat_y, flat_p)).auroc_ap(ones_f)
        micro["auroc"], micro["auprc"] = float(au[0]), float(ap[0])
        for k in ("auroc", "auprc"):
            micro[f"{k}_lo"], micro[f"{k}_hi"] = interval(micro_boot[k])
    report = EvalReport(
        labels=rows,
        macro=macro,
        micro=micro,
        n_records=n,
        n_boot=n_boot,
        level="patient" if groups is not None else "record",
        threshold_rule=rule,
    )
    if top is not None:
        report.extra["most_probable_class"] = top.summary(interval)
    report.arrays = (y, probs, list(labels))
    if keep_draws:
        report.draws = {
            name: {k: np.concatenate(per_label[j][k]) for k in _POINT_METRICS}
            for j, name in enumerate(labels)
            if valid[j]
        }
        report.draws["macro"] = {k: np.concatenate(boots[k]) for k in _POINT_METRICS}
    return report


def infer_task(y: np.ndarray, labels: Sequence[str], task: str = "auto") -> str:
    """``classification`` when every label value is 0 or 1, ``regression`` when the labels are
    continuous; a clear error for continuous labels asked to be evaluated as classes, or for a mix."""
    known = np.isfinite(y)
    binary = [bool(np.isin(y[known[:, j], j], (0.0, 1.0)).all()) for j in range(y.shape[1])]
    if task == "regression":
        return task
    if task not in ("auto", "classification"):
        raise ValueError(f"task must be auto, classification or regression (got {task!r})")
    if all(binary):
        if not known.all():
            bad = [name for j, name in enumerate(labels) if not known[:, j].all()]
            raise ValueError(
                f"label column(s) {', '.join(bad[:5])} have missing values: fill or drop those rows"
            )
        return "classification"
    cont = [name for name, b in zip(labels, binary) if not b]
    example = next(v for j, b in enumerate(binary) if not b for v in y[known[:, j], j] if v not in (0.0, 1.0))
    if task == "classification" or any(binary):
        raise ValueError(
            f"label column(s) {', '.join(cont[:5])} hold values other than 0 and 1 (e.g. {example:g}): "
            "classification needs 0/1 labels; for a continuous target evaluate it alone with "
            "--task regression"
        )
    return "regression"


@dataclass
class Joined:
    """Predictions and labels joined by record: ``y`` and ``p`` are (N, L) over ``labels``;
    ``table`` is the merged table (label-table columns suffixed ``__true`` where both have them).
    ``unmatched``: prediction rows without a label row; ``unmatched_labels``: label rows without a
    prediction; ``how``: how the records were matched (see :func:`align_tables`)."""

    table: Any
    labels: list[str]
    y: np.ndarray
    p: np.ndarray
    patients: list[Any] | None
    unmatched: int
    unmatched_labels: int = 0
    how: str = "exact keys"

    def join_note(self) -> str | None:
        """A sentence when fewer than all records were matched (None when every row has its partner)."""
        if not self.unmatched and not self.unmatched_labels:
            return None
        return (
            f"{len(self.table)} records evaluated ({self.how}); {self.unmatched_labels} labelled record(s) "
            f"have no prediction and {self.unmatched} prediction row(s) no label"
        )


def align_tables(
    left: Any, right: Any, id_column: str = "record", *, what: str = "labels"
) -> tuple[Any, Any]:
    """Rows of ``left`` and ``right`` (DataFrames) paired by record, wherever each table was written:
    exact ids, else the shortest tail of path parts naming every record once
    (:func:`ecgfounder.records.match_records`). Returns (merged table, the match); ``right``'s
    columns that ``left`` also has are suffixed ``__true``. No record in common is a ValueError."""
    import pandas as pd

    from ..records import match_records

    match = match_records(left[id_column].astype(str).tolist(), right[id_column].astype(str).tolist())
    if not match.pairs:
        show = lambda df: ", ".join(map(str, df[id_column].astype(str).head(2)))  # noqa: E731
        raise ValueError(
            f"no {id_column} in common with the {what} (e.g. {show(left)} against {show(right)}): "
            "neither the same keys nor the same file names"
        )
    li = [i for i, _ in match.pairs]
    rj = [j for _, j in match.pairs]
    a = left.iloc[li].reset_index(drop=True)
    b = right.iloc[rj].reset_index(drop=True).drop(columns=[id_column])
    b = b.rename(columns={c: f"{c}__true" for c in b.columns if c in a.columns})
    return pd.concat([a, b], axis=1), match


def join_tables(
    predictions: Any,
    truth: Any,
    *,
    id_column: str = "record",
    label_columns: Sequence[str] | None = None,
    patient_column: str | None = None,
    exclude: Sequence[str] = (),
) -> Joined:
    """Join a prediction table with a label table on ``id_column`` (files or DataFrames; rows of
    failed predictions dropped; records matched wherever each table was written, see
    :func:`align_tables`); the labels are the label-table columns the predictions also have
    (or ``label_columns``), never ``id_column``, ``patient_column`` or ``exclude``."""
    import pandas as pd

    pred = predictions if isinstance(predictions, pd.DataFrame) else read_table(predictions)
    true = truth if isinstance(truth, pd.DataFrame) else read_table(truth)
    for name, df in (("predictions", pred), ("labels", true)):
        if id_column not in df.columns:
            raise ValueError(f"the {name} table has no {id_column!r} column")
    if "error" in pred.columns:
        err = pred["error"]
        pred = pred[err.isna() | (err.astype(str) == "")]
    skip = {id_column, patient_column, *exclude}
    shared = [c for c in (label_columns or true.columns) if c not in skip and c in pred.columns]
    if not shared:
        have = [c for c in pred.columns if c not in skip][:6]
        raise ValueError(
            f"no label column appears in both tables (labels: "
            f"{', '.join(c for c in true.columns if c not in skip)[:200]}; predictions: "
            f"{', '.join(have)}{' ...' if len(pred.columns) > 6 else ''})"
        )
    merged, match = align_tables(pred, true, id_column)
    y = merged[[f"{c}__true" for c in shared]].to_numpy(dtype=np.float64)
    p = merged[shared].to_numpy(dtype=np.float64)
    patients = merged[patient_column].tolist() if patient_column else None
    return Joined(
        merged, shared, y, p, patients, len(match.left_unmatched), len(match.right_unmatched), match.how
    )


def evaluate_joined(joined: Joined, *, task: str = "auto", **kwargs: Any) -> Any:
    """Evaluate joined tables: see :func:`evaluate_tables`."""
    y, p, shared = joined.y, joined.p, joined.labels
    task = infer_task(y, shared, task)
    if task == "regression":
        from .regression import evaluate_regression

        rkw = {
            k: v for k, v in kwargs.items() if k in ("n_boot", "seed", "ci", "keep_draws")
        }  # thresholds etc. do not apply
        report = evaluate_regression(y, p, shared, groups=joined.patients, **rkw)
        record_join_extra(report.extra, joined)
        return report
    temperature = kwargs.pop("temperature", None)
    if temperature is not None:
        p = apply_temperature(p, temperature)
    report = evaluate_arrays(y, p, shared, groups=joined.patients, **kwargs)
    if temperature is not None:
        report.extra["temperature"] = temperature
    record_join_extra(report.extra, joined)
    return report


def record_join_extra(extra: dict[str, Any], joined: Joined) -> None:
    extra["unmatched_predictions"] = joined.unmatched
    extra["unmatched_labels"] = joined.unmatched_labels
    extra["matched_by"] = joined.how
    note = joined.join_note()
    if note:
        extra["join_note"] = note


def evaluate_tables(
    predictions: Any,
    truth: Any,
    *,
    id_column: str = "record",
    label_columns: Sequence[str] | None = None,
    patient_column: str | None = None,
    task: str = "auto",
    **kwargs: Any,
) -> Any:
    """Join a prediction table (``ecgfounder predict`` output: ``record`` + a probability column per
    label) with a label table (``record`` + 0/1 columns) and evaluate the labels both share.
    ``task``: ``auto`` (0/1 labels: classification, an :class:`EvalReport`; continuous labels:
    regression, a :class:`~ecgfounder.eval.regression.RegressionReport`), ``classification`` (any
    value other than 0/1 is an error) or ``regression``."""
    joined = join_tables(
        predictions, truth, id_column=id_column, label_columns=label_columns, patient_column=patient_column
    )
    return evaluate_joined(joined, task=task, **kwargs)


def fit_temperature_tables(
    predictions: Any, labels: Any, *, id_column: str = "record", mapping: Any = None
) -> tuple[float, int]:
    """Fit temperature scaling on a (validation) predictions table against its labels table (files
    or DataFrames; ``mapping`` applied to the predictions first). Returns (temperature, records)."""
    pred = predictions if not isinstance(predictions, (str, Path)) else read_table(predictions)
    true = labels if not isinstance(labels, (str, Path)) else read_table(labels)
    if mapping is not None:
        pred = mapping.apply(pred, id_column=id_column)
    cols = [c for c in true.columns if c != id_column and c in pred.columns]
    if not cols:
        raise ValueError("temperature fitting: the predictions and labels tables share no label column")
    merged, _ = align_tables(pred, true, id_column)
    temperature = fit_temperature(
        merged[[f"{c}__true" for c in cols]].to_numpy(float), merged[cols].to_numpy(float)
    )
    return temperature, len(merged)


def read_table(path: str | Path) -> Any:
    """A predictions or labels table: CSV, JSON lines or Parquet, by the suffix."""
    import pandas as pd

    from ..errors import ECGFounderError

    path = Path(path)
    if not path.is_file():
        raise ECGFounderError(
            f"{path}: no such file" if not path.exists() else f"{path}: is a folder, not a table"
        )
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=True)
        return pd.read_csv(path)
    except (ValueError, OSError, ImportError) as exc:  # pandas' parser errors are ValueErrors
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ECGFounderError(f"{path}: cannot read the table ({why})") from None
