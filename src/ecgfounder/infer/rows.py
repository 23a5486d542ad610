"""One row per record: the schema shared by the command line, Python and the service.

:class:`ScoringOptions` turns a model's window outputs into a record's (the aggregate), decides
which labels are findings (the thresholds) and names the outputs. :func:`record_row` builds the
row of one record, in one structure whatever prints it:

========================  =====================================================================
``schema``                ``ecgfounder.row/1`` (:data:`ROW_SCHEMA`); bumped when a field changes
``record``                the record's key (the path as given; ``file.h5[i]`` for exam i)
``findings``              labels at or above their threshold, most probable first:
                          ``[{"label", "probability"}]``
``flags``                 quality, noise, artefact and electrode flags (``["flat:V3", ...]``)
``error``                 why the record could not be scored (``""`` when it was)
``model``                 the model's name
``preprocessing``         the recipe, leads, rate and window length the model was fed
``n_windows``             windows scored
``duration_s``            the record's length, to the millisecond
``probabilities``         ``{label: probability}`` (values for a regression model)
========================  =====================================================================

Tables (CSV, Parquet, DataFrames) hold the same row flattened by :func:`flatten_row`: ``findings``
as ``"AF (0.91); other (0.40)"``, ``flags`` joined by ``;``, one column per label in place of
``probabilities`` (labels that clash with a column name get a ``p_`` prefix), ``schema`` left out.
JSON (the service, ``.jsonl``) keeps the structure. Documented in docs/predict.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.outputs import AGGREGATES
from ..models.outputs import aggregate as aggregate_outputs

__all__ = ["ROW_SCHEMA", "RESERVED_COLUMNS", "ScoringOptions", "record_row", "flatten_row", "seconds"]

#: The row schema's name and version.
ROW_SCHEMA = "ecgfounder.row/1"

#: Columns of a flattened row that are not labels (a label with one of these names is prefixed ``p_``).
RESERVED_COLUMNS = (
    "record",
    "window",
    "start_s",
    "error",
    "findings",
    "flags",
    "n_windows",
    "duration_s",
    "notes",
    "model",
    "preprocessing",
)


def seconds(value: float | None) -> float | None:
    """A duration to the millisecond (``1805.5555555555557`` -> ``1805.556``)."""
    return None if value is None or not math.isfinite(value) else round(float(value), 3)


@dataclass(frozen=True)
class ScoringOptions:
    """How window outputs become a record's and which are findings.

    ``labels``: the output names as columns (``p_`` before a reserved name); ``thresholds``: one per
    label; ``aggregate``: ``mean``, ``max`` or ``logit`` (see
    :func:`~ecgfounder.models.outputs.aggregate`); ``task``: the model's; ``conformal``: optional
    calibrated prediction sets (record rows then get ``conformal_set`` and ``abstain``)."""

    labels: tuple[str, ...]
    thresholds: np.ndarray
    aggregate: str = "mean"
    task: str = "multilabel"
    conformal: Any = None

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)} (got {self.aggregate!r})")
        if len(self.thresholds) != len(self.labels):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(self.labels)} labels")
        if self.conformal is not None:
            missing = [name for name in self.conformal.labels if name not in self.labels]
            if missing:
                raise ValueError(
                    f"the conformal file's labels {', '.join(missing[:5])} are not outputs of the model"
                )

    @classmethod
    def for_model(
        cls,
        info: Any,
        n_outputs: int,
        *,
        thresholds: float | Mapping[str, float] | Sequence[float] | None = None,
        aggregate: str | None = None,
        conformal: Any = None,
        reserved: Sequence[str] = RESERVED_COLUMNS,
    ) -> ScoringOptions:
        """The options of a model (``info``: its :class:`~ecgfounder.models.ModelInfo` or None):
        its labels, stored thresholds (else 0.5) and aggregate (else mean), each overridable."""
        names = (
            list(info.labels)
            if info is not None and info.labels
            else [f"output_{i}" for i in range(n_outputs)]
        )
        labels = tuple(f"p_{name}" if name in reserved else name for name in names)
        return cls(
            labels=labels,
            thresholds=_thresholds(thresholds, info, names),
            aggregate=aggregate or (info.aggregate if info is not None else None) or "mean",
            task=info.task if info is not None else "multilabel",
            conformal=conformal,
        )

    def record_outputs(self, window_outputs: Any) -> np.ndarray:
        """A record's outputs from its window outputs (windows, labels), by ``aggregate``."""
        return aggregate_outputs(window_outputs, self.aggregate, self.task)

    def findings(self, probs: np.ndarray) -> list[dict[str, Any]]:
        """Labels at or above their threshold, most probable first (none for a regression)."""
        if self.task == "regression":
            return []
        hits = np.flatnonzero(probs >= self.thresholds)
        hits = hits[np.argsort(-probs[hits], kind="stable")]
        return [{"label": self.labels[i], "probability": float(probs[i])} for i in hits]

    def top(self, probs: np.ndarray, k: int) -> list[dict[str, Any]]:
        """The ``k`` most probable labels, each with whether it reaches its threshold."""
        order = np.argsort(-probs, kind="stable")[:k]
        return [
            {
                "label": self.labels[i],
                "probability": float(probs[i]),
                "positive": bool(probs[i] >= self.thresholds[i]),
            }
            for i in order
        ]


def _thresholds(value: Any, info: Any, labels: list[str]) -> np.ndarray:
    n = len(labels)
    base = np.full(n, 0.5)
    if info is not None and info.thresholds is not None:
        base = np.asarray(info.thresholds, dtype=np.float64)
    if value is None:
        return base
    if isinstance(value, (int, float)):
        return np.full(n, float(value))
    if isinstance(value, Mapping):
        out = base.copy()
        unknown = [k for k in value if k not in labels]
        if unknown:
            raise ValueError(f"thresholds for unknown labels: {', '.join(map(str, unknown[:5]))}")
        for k, v in value.items():
            out[labels.index(k)] = float(v)
        return out
    arr = np.asarray(list(value), dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{arr.size} thresholds for {n} labels")
    return arr


def record_row(
    key: str,
    probs: np.ndarray | None,
    scoring: ScoringOptions,
    *,
    flags: Sequence[str] = (),
    error: str | None = None,
    model: str = "",
    preprocessing: str = "",
    n_windows: int = 0,
    duration_s: float | None = None,
    window: tuple[int | None, float | None] | None = None,
    extras: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The row of one record, or with ``window`` (index, start in s) of one of its windows: see the
    module. ``probs`` None: not scored. ``extras`` (measurements) follow ``preprocessing``."""
    scored = probs is not None and not error
    row: dict[str, Any] = {"schema": ROW_SCHEMA, "record": key}
    if window is not None:
        row["window"], row["start_s"] = window[0], seconds(window[1])
    row.update(
        findings=scoring.findings(probs) if scored else [],
        flags=list(flags),
        error=error or "",
        model=model,
        preprocessing=preprocessing,
    )
    if extras:
        row.update(extras)
    row["n_windows"] = n_windows if scored else 0
    row["duration_s"] = seconds(duration_s)
    row["probabilities"] = (
        {label: float(p) for label, p in zip(scoring.labels, probs)}
        if scored
        else dict.fromkeys(scoring.labels, math.nan)
    )
    return row


def flatten_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as a table holds it (see the module)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "schema":
            continue
        if key == "findings":
            out[key] = "; ".join(f"{f['label']} ({f['probability']:.2f})" for f in value)
        elif key == "flags":
            out[key] = ";".join(value)
        elif key == "probabilities":
            out.update(value)
        else:
            out[key] = value
    return out
