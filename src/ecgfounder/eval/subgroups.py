"""For whom does the model work? Every metric per subgroup (sex, age band, site, device...), with
bootstrap CIs, and the largest gap between groups with its CI.

Method. The thresholds are those of the whole evaluation (Youden on all records, fixed, or the
model's), held fixed in every group: a sensitivity gap then means the same decision rule serves the
groups differently, not that each group got its own cut-off. Each group is bootstrapped on its own
(records or patients, drawn within the group), so draws of two groups are independent and the
difference of their draws is a bootstrap draw of the gap (a stratified bootstrap). For every label
and metric the largest gap is between the groups with the highest and the lowest point estimate,
among groups whose estimate can be trusted (at least ``min_count`` positives and negatives for a
class, ``min_count`` records for a continuous target; the ``unknown`` group never counts). Picking
the extreme pair after looking makes the largest gap biased upward when many groups are small:
read it with its interval, and an interval that includes 0 as no evidence of a gap.

Grouping columns come from the labels table, the predictions table, or a covariates table (e.g.
:func:`~ecgfounder.io.reader.read_demographics`: age and sex from the records' headers). An age
column becomes bands (``<40``, ``40-59``, ``60-79``, ``80+`` by default); any other numeric column
with more than 12 distinct values becomes quartile bands; missing values are the ``unknown`` group.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import (
    MIN_COUNT,
    EvalReport,
    Joined,
    align_tables,
    evaluate_arrays,
    infer_task,
    join_tables,
    read_table,
    record_join_extra,
)
from .regression import RegressionReport, evaluate_regression

__all__ = [
    "SubgroupReport",
    "evaluate_subgroups",
    "evaluate_subgroups_tables",
    "band_values",
    "AGE_BANDS",
    "UNKNOWN",
]

#: Default age-band edges (years): <40, 40-59, 60-79, 80+.
AGE_BANDS: tuple[float, ...] = (40.0, 60.0, 80.0)
UNKNOWN = "unknown"
_CLASS_METRICS = ("auroc", "auprc", "sensitivity", "specificity", "ppv", "npv", "f1")
_REG_METRICS = ("mae", "rmse", "bias", "pearson_r")
_AGE_NAMES = ("age", "age_years", "patient_age", "age_at_ecg")


def _num(v: float) -> str:
    return f"{v:g}"


def band_values(
    values: Sequence[Any], column: str = "", age_bands: Sequence[float] | None = None
) -> np.ndarray:
    """The group of each value as a string: age bands for an age column (or when ``age_bands`` is
    given), quartile bands for another numeric column with more than 12 distinct values, the value
    itself otherwise; missing values are ``unknown``."""
    raw = list(values)
    missing = np.array(
        [
            v is None or (isinstance(v, float) and not np.isfinite(v)) or str(v).strip() in ("", "nan")
            for v in raw
        ]
    )
    try:
        num = np.array([np.nan if m else float(v) for v, m in zip(raw, missing)], dtype=np.float64)
    except (TypeError, ValueError):
        num = None
    out = np.array([UNKNOWN if m else str(v).strip() for v, m in zip(raw, missing)], dtype=object)
    if num is None:
        return out
    known = ~missing
    is_age = column.strip().lower() in _AGE_NAMES
    if age_bands is not None or is_age:
        edges = sorted(age_bands if age_bands is not None else AGE_BANDS)
        names = (
            [f"<{_num(edges[0])}"]
            + [
                f"{_num(a)}-{_num(b - 1) if float(b).is_integer() else '<' + _num(b)}"
                for a, b in zip(edges, edges[1:])
            ]
            + [f"{_num(edges[-1])}+"]
        )
    elif len(np.unique(num[known])) > 12:
        q = np.quantile(num[known], [0.25, 0.5, 0.75])
        edges = list(np.unique(q))
        bounds = [float(num[known].min()), *edges, float(num[known].max())]
        names = [
            f"q{i + 1} [{_num(round(a, 3))}, {_num(round(b, 3))}{']' if i == len(edges) else ')'}"
            for i, (a, b) in enumerate(zip(bounds, bounds[1:]))
        ]
    else:
        out[known] = [_num(v) for v in num[known]]
        return out
    idx = np.searchsorted(np.asarray(edges), num[known], side="right")
    out[known] = [names[i] for i in idx]
    return out


def _order(groups: Sequence[str]) -> list[str]:
    """Groups in a readable order: bands by their lower edge, other values alphabetically, unknown last."""

    def key(g: str) -> tuple[int, float, str]:
        if g == UNKNOWN:
            return (2, 0.0, g)
        head = g.split()[-1] if g.startswith("q") else g
        digits = head.lstrip("<[").split("-")[0].rstrip("+,")
        try:
            return (0, float(digits) - (0.5 if g.startswith("<") else 0.0), g)
        except ValueError:
            return (1, 0.0, g)

    return sorted(set(groups), key=key)


@dataclass
class SubgroupReport:
    """Per-group reports for each grouping column, and the largest gaps. ``groups`` rows:
    ``column``, ``group``, ``n``, ``report``; ``gaps`` rows: ``column``, ``label``, ``metric``,
    ``high_group``, ``high``, ``low_group``, ``low``, ``gap``, ``gap_lo``, ``gap_hi``."""

    task: str
    overall: EvalReport | RegressionReport
    groups: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    metrics: tuple[str, ...]
    min_count: int
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> Any:
        """One row per column, group and label: n, counts, and each metric with its CI."""
        import pandas as pd

        rows = []
        for g in self.groups:
            for r in g["report"].labels:
                row = {
                    "column": g["column"],
                    "group": g["group"],
                    "n": g["n"],
                    **{k: v for k, v in r.items() if k != "reliability"},
                }
                rows.append(row)
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metrics": list(self.metrics),
            "min_count": self.min_count,
            "thresholds": (self.overall.thresholds if isinstance(self.overall, EvalReport) else None),
            "groups": [
                {
                    "column": g["column"],
                    "group": g["group"],
                    "n": g["n"],
                    "labels": [
                        {k: v for k, v in r.items() if k != "reliability"} for r in g["report"].labels
                    ],
                    **({"macro": g["report"].macro} if isinstance(g["report"], EvalReport) else {}),
                }
                for g in self.groups
            ],
            "gaps": self.gaps,
            "notes": self.notes,
        }

    def to_markdown(self) -> str:
        def fmt(r: dict[str, Any], k: str) -> str:
            v = r.get(k)
            if v is None or not np.isfinite(v):
                return "n/a"
            lo, hi = r.get(f"{k}_lo"), r.get(f"{k}_hi")
            return f"{v:.3f} ({lo:.3f}-{hi:.3f})" if lo is not None and np.isfinite(lo) else f"{v:.3f}"

        out = [
            "Subgroups: every metric per group with a 95% bootstrap CI (resampled within the group); "
            + (
                "thresholds of the whole evaluation held fixed in every group. "
                if self.task == "classification"
                else ""
            )
            + f"† fewer than {self.min_count} "
            + ("positives or negatives" if self.task == "classification" else "records")
            + ": shown, never used for a gap.",
            "",
        ]
        columns = list(dict.fromkeys(g["column"] for g in self.groups))
        labels = [r["label"] for r in self.overall.labels]
        for column in columns:
            for label in labels:
                out.append(f"### {column}: {label}")
                out.append("")
                if self.task == "classification":
                    out.append(
                        "| group | n | n+ | "
                        + " | ".join(
                            m.upper() if m in ("auroc", "auprc", "ppv", "npv") else m for m in self.metrics
                        )
                        + " |"
                    )
                else:
                    out.append("| group | n | " + " | ".join(self.metrics) + " |")
                out.append("| --- " * (len(self.metrics) + (3 if self.task == "classification" else 2)) + "|")
                for g in self.groups:
                    if g["column"] != column:
                        continue
                    r = next(x for x in g["report"].labels if x["label"] == label)
                    name = f"{g['group']} †" if self._low(g, r) else g["group"]
                    if r.get("status"):
                        cells = [r["status"]] + [""] * (len(self.metrics) - 1)
                    else:
                        cells = [fmt(r, m) for m in self.metrics]
                    count = [str(g["n"])] + (
                        [str(r.get("n_pos", ""))] if self.task == "classification" else []
                    )
                    out.append(f"| {name} | " + " | ".join(count + cells) + " |")
                gaps = [x for x in self.gaps if x["column"] == column and x["label"] == label]
                if gaps:
                    out.append("")
                    out.append(
                        "Largest gap (highest - lowest group, 95% CI): "
                        + "; ".join(
                            f"{x['metric']} {x['gap']:.3f} ({x['gap_lo']:.3f} to {x['gap_hi']:.3f}), "
                            f"{x['high_group']} vs {x['low_group']}"
                            for x in gaps
                        )
                        + "."
                    )
                out.append("")
        if self.notes:
            out += [f"Note: {n}" for n in self.notes] + [""]
        return "\n".join(out)

    def _low(self, g: dict[str, Any], r: dict[str, Any]) -> bool:
        if self.task == "classification":
            return bool(r.get("low_count") or r.get("status"))
        return int(r.get("n", 0)) < self.min_count

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """subgroups.csv, subgroups.json, subgroups.md in ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "subgroups_csv": out / "subgroups.csv",
            "subgroups_json": out / "subgroups.json",
            "subgroups_markdown": out / "subgroups.md",
        }
        self.to_frame().to_csv(paths["subgroups_csv"], index=False)
        paths["subgroups_json"].write_text(json.dumps(self.to_json(), indent=2, default=float))
        paths["subgroups_markdown"].write_text(self.to_markdown())
        return paths


def evaluate_subgroups(
    y: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    by: dict[str, Sequence[Any]],
    *,
    task: str = "auto",
    thresholds: Any = "youden",
    n_boot: int = 1000,
    seed: int = 0,
    patients: Sequence[Any] | None = None,
    min_count: int = MIN_COUNT,
    age_bands: Sequence[float] | None = None,
    ci: float = 0.95,
) -> SubgroupReport:
    """Evaluate ``probs`` against ``y`` (N, L) overall and in each group of each column of ``by``
    (column -> N values); see the module for the method."""
    y = np.asarray(y, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    task = infer_task(y, labels, task)
    n = len(y)
    for column, values in by.items():
        if len(values) != n:
            raise ValueError(f"grouping column {column!r} has {len(values)} values for {n} records")
    pat = np.asarray(patients, dtype=object) if patients is not None else None
    common = {"n_boot": n_boot, "ci": ci, "keep_draws": True}
    if task == "classification":
        overall: EvalReport | RegressionReport = evaluate_arrays(
            y, probs, labels, thresholds=thresholds, seed=seed, groups=patients, min_count=min_count, **common
        )
        thr = [t if np.isfinite(t) else 0.5 for t in overall.thresholds]
        metrics = _CLASS_METRICS
    else:
        overall = evaluate_regression(y, probs, labels, seed=seed, groups=patients, **common)
        metrics = _REG_METRICS
    rows: list[dict[str, Any]] = []
    gaps: list[dict[str, Any]] = []
    notes: list[str] = []
    k = 0
    for column, values in by.items():
        bands = band_values(values, column, age_bands if column.strip().lower() in _AGE_NAMES else None)
        column_rows = []
        for group in _order(bands):
            keep = bands == group
            k += 1
            sub_pat = list(pat[keep]) if pat is not None else None
            if task == "classification":
                rep: EvalReport | RegressionReport = evaluate_arrays(
                    y[keep],
                    probs[keep],
                    labels,
                    thresholds=thr,
                    seed=seed + k,
                    groups=sub_pat,
                    min_count=min_count,
                    **common,
                )
            else:
                rep = evaluate_regression(
                    y[keep], probs[keep], labels, seed=seed + k, groups=sub_pat, **common
                )
            column_rows.append({"column": column, "group": group, "n": int(keep.sum()), "report": rep})
        rows += column_rows
        usable_groups = [g for g in column_rows if g["group"] != UNKNOWN]
        if len(usable_groups) < 2:
            notes.append(f"{column}: fewer than two known groups, no gap computed")
            continue
        for label in labels:
            for metric in metrics:
                cand = []
                for g in usable_groups:
                    r = next(x for x in g["report"].labels if x["label"] == label)
                    low = (
                        (r.get("low_count") or r.get("status"))
                        if task == "classification"
                        else r["n"] < min_count
                    )
                    if (
                        low
                        or not np.isfinite(r.get(metric, np.nan))
                        or label not in (g["report"].draws or {})
                    ):
                        continue
                    cand.append((r[metric], g))
                if len(cand) < 2:
                    continue
                (hi_v, hi_g), (lo_v, lo_g) = max(cand, key=lambda c: c[0]), min(cand, key=lambda c: c[0])
                diff = hi_g["report"].draws[label][metric] - lo_g["report"].draws[label][metric]
                diff = diff[np.isfinite(diff)]
                a = (1 - ci) / 2
                gap_lo, gap_hi = (
                    (float(np.quantile(diff, a)), float(np.quantile(diff, 1 - a)))
                    if len(diff)
                    else (float("nan"), float("nan"))
                )
                gaps.append(
                    {
                        "column": column,
                        "label": label,
                        "metric": metric,
                        "high_group": hi_g["group"],
                        "high": float(hi_v),
                        "low_group": lo_g["group"],
                        "low": float(lo_v),
                        "gap": float(hi_v - lo_v),
                        "gap_lo": gap_lo,
                        "gap_hi": gap_hi,
                        "groups_compared": len(cand),
                    }
                )
    return SubgroupReport(task, overall, rows, gaps, metrics, min_count, notes)


def evaluate_subgroups_tables(
    predictions: Any,
    truth: Any,
    by: Sequence[str],
    *,
    covariates: Any = None,
    id_column: str = "record",
    label_columns: Sequence[str] | None = None,
    patient_column: str | None = None,
    task: str = "auto",
    temperature: float | None = None,
    **kwargs: Any,
) -> SubgroupReport:
    """:func:`evaluate_subgroups` on tables: each grouping column is taken from the labels table,
    else the predictions table, else ``covariates`` (a table with ``id_column``, e.g. age and sex
    read from the records), joined by record. A grouping column that is also a predicted target
    (``--by age`` on an age regression) is both: evaluated, and grouped by its true value."""
    import pandas as pd

    pred = predictions if isinstance(predictions, pd.DataFrame) else read_table(predictions)
    true = truth if isinstance(truth, pd.DataFrame) else read_table(truth)
    predicted = [
        c for c in by if c in pred.columns and c in true.columns and pd.api.types.is_numeric_dtype(pred[c])
    ]
    joined: Joined = join_tables(
        pred,
        true,
        id_column=id_column,
        label_columns=label_columns,
        patient_column=patient_column,
        exclude=[c for c in by if c not in predicted],
    )
    table = joined.table
    cov = None
    notes_join = None
    if covariates is not None:
        cov = covariates if isinstance(covariates, pd.DataFrame) else pd.read_csv(covariates)
        if id_column not in cov.columns:
            raise ValueError(f"the covariates table has no {id_column!r} column")
        cov = cov.drop_duplicates(id_column)
        # the records' rows aligned with the joined table, wherever the files were when each was written
        aligned, match = align_tables(table[[id_column]], cov, id_column, what="records read for age and sex")
        covered = len({i for i, _ in match.pairs})
        if covered < len(table):
            notes_join = (
                f"{len(table) - covered} of {len(table)} evaluated records are not among the records read "
                f"for the covariates ({match.how}): their group is 'unknown'"
            )
        cov = aligned.drop_duplicates(id_column).set_index(id_column)
    values: dict[str, Sequence[Any]] = {}
    for column in by:
        if f"{column}__true" in table.columns:
            values[column] = table[f"{column}__true"].tolist()
        elif column in table.columns:
            values[column] = table[column].tolist()
        elif cov is not None and column in cov.columns:
            values[column] = cov[column].reindex(table[id_column]).tolist()
        else:
            where = "the labels table, the predictions table" + (
                " or the covariates" if cov is not None else ""
            )
            raise ValueError(
                f"grouping column {column!r} is in none of {where}"
                + (
                    ""
                    if cov is not None
                    else "; age and sex can be read from the records (--records INPUT... on the command line)"
                )
            )
    p = joined.p
    if temperature is not None:
        from .calibration import apply_temperature

        p = apply_temperature(p, temperature)
    report = evaluate_subgroups(
        joined.y, p, joined.labels, values, task=task, patients=joined.patients, **kwargs
    )
    record_join_extra(report.overall.extra, joined)
    if covariates is not None and notes_join:
        report.notes.append(notes_join)
    if temperature is not None:
        report.overall.extra["temperature"] = temperature
    return report
