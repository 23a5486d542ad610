"""``Predictor``: files, records or arrays in; named probabilities or embeddings out.

Reading and preprocessing run in worker processes, a bounded number of records ahead of the model,
so the model does not wait on files and memory stays flat however many files stream through.
Windows of several records share a batch. A file that cannot be used becomes a row with an
``error`` and the stream goes on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..contract import InputContract
from ..errors import ECGInputError
from ..io.record import ECGRecord
from ..io.sources import Source, expand_inputs
from ..signal.artifacts import ArtifactThresholds
from ..signal.quality import QualityThresholds
from ..signal.stream import PreparedItem, PrepareOptions, prepared_stream
from .backends import Backend, Precision, load_backend
from .rows import RESERVED_COLUMNS, ScoringOptions, flatten_row, record_row

__all__ = [
    "Predictor",
    "predictor_parts",
    "Embeddings",
    "PrepareOptions",
    "RESERVED_COLUMNS",
    "ScoringOptions",
]

log = logging.getLogger("ecgfounder")


@dataclass
class Embeddings:
    """Pooled embeddings: ``vectors[i]`` belongs to ``records[i]`` (window ``windows[i]`` when per
    window, starting at ``start_s[i]`` seconds). Failed inputs are in ``errors``."""

    records: list[str]
    vectors: np.ndarray
    windows: list[int] | None = None
    start_s: list[float] | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def to_frame(self) -> Any:
        import pandas as pd

        df = pd.DataFrame({"record": self.records})
        if self.windows is not None:
            df["window"] = self.windows
            df["start_s"] = self.start_s
        df["embedding"] = list(self.vectors)
        return df


def predictor_parts(
    model: Any,
    *,
    device: str | None = None,
    precision: Precision = "fp32",
    batch_size: int = 64,
    lead: str | None = None,
    stride_s: float | None = None,
    aggregate: Literal["mean", "max", "logit"] | None = None,
    thresholds: float | Mapping[str, float] | Sequence[float] | None = None,
    fs: float | None = None,
    leads: Sequence[str] | None = None,
    units: str | None = None,
    contract: InputContract | None = None,
    calibration: Any = None,
    compile: bool = False,
    conformal: Any = None,
    measure: bool = False,
    artifact_checks: bool = True,
) -> tuple[Backend, PrepareOptions, ScoringOptions]:
    """The three parts of a :class:`Predictor` made from a model and plain options: the
    :class:`~ecgfounder.infer.backends.Backend` that runs it, the
    :class:`~ecgfounder.signal.stream.PrepareOptions` that read and prepare its input (its contract
    unless ``contract`` is given) and the :class:`~ecgfounder.infer.rows.ScoringOptions` that turn
    its outputs into rows (its labels, stored thresholds and aggregate unless given).

    ``model``: a loaded model, a backend, a registered name or a model file. ``device``: ``None``
    picks CUDA when available, else CPU. ``precision``: ``fp32``, ``bf16`` (autocast, CPU or GPU),
    ``fp16`` (GPU) or ``int8`` (CPU, ONNX Runtime static quantisation: the model is exported and
    quantised with activation ranges calibrated on the ``calibration`` inputs, files or folders, or
    on an (N, leads, samples) array of prepared windows; an ``.onnx`` model quantised by
    ``ecgfounder export --int8`` runs as it is). ``compile``: ``torch.compile`` the model (first
    batch pays the compilation; on CUDA with CUDA graphs, ``mode="reduce-overhead"``); batches are
    padded to ``batch_size`` so one compiled graph serves the whole run. ``lead``: the channel to
    use for a single-lead model. ``stride_s``: window step for records longer than the window.
    ``aggregate``: how a record's window probabilities are combined: ``mean``, ``max`` or
    ``logit`` (mean window logit, i.e. the normalised geometric mean for a softmax model;
    :func:`~ecgfounder.models.outputs.aggregate`); default the model's own
    (``model.info.aggregate``), else ``mean``. ``thresholds``: one number, a mapping label ->
    number, or a sequence per label; default the model's stored thresholds, else 0.5.
    ``fs``/``leads``/``units`` are passed to :func:`~ecgfounder.read_ecg` for files that need them.
    ``conformal``: a :class:`~ecgfounder.eval.conformal.ConformalSets`; record rows then get
    ``conformal_set`` and ``abstain`` (per-window rows do not: the sets were calibrated per record).
    ``measure``: each row also gets the clinical measurements of its record (``hr_bpm``, ``pr_ms``,
    ``qrs_ms``, ``qt_ms``, QTc, axes, ``measure_flags``: :func:`ecgfounder.measure`), computed on the
    record as read (every lead, its own rate). ``artifact_checks=False`` skips the noise, artefact
    and electrode flags (docs/trust.md; about 3 ms per 12-lead record).
    """
    backend = load_backend(
        model,
        device=device,
        precision=precision,
        compile=compile,
        batch_size=batch_size,
        calibration=calibration,
        lead=lead,
    )
    info = getattr(backend, "info", None)
    contract = contract or (info.contract if info is not None else None)
    if contract is None:
        raise ValueError(
            "the model carries no input contract (leads, rate, length); pass contract=InputContract(...)"
        )
    reserved: tuple[str, ...] = tuple(RESERVED_COLUMNS)
    extras = None
    if measure:
        from ..measurement.core import MEASURE_COLUMNS, measure_row

        reserved, extras = (*RESERVED_COLUMNS, *MEASURE_COLUMNS), measure_row
    scoring = ScoringOptions.for_model(
        info,
        backend.config.n_classes,
        thresholds=thresholds,
        aggregate=aggregate,
        conformal=conformal,
        reserved=reserved,
    )
    quality = (
        QualityThresholds()
        if artifact_checks
        else QualityThresholds(artifacts=ArtifactThresholds(enabled=False))
    )
    prepare = PrepareOptions(
        contract,
        lead,
        stride_s,
        fs,
        tuple(leads) if leads else None,
        units,
        extras=extras,
        quality=quality,
    )
    return backend, prepare, scoring


class Predictor:
    """Score ECGs: a backend runs the model, ``prepare`` reads and prepares the inputs (the
    model's input contract), ``scoring`` turns outputs into rows (labels, thresholds, aggregate).

    ``Predictor(backend, prepare, scoring)`` takes the three parts as they are
    (:func:`predictor_parts` makes them); ``Predictor(model, **options)`` makes them from a model
    (a loaded model, a registered name or a model file) and the options of
    :func:`predictor_parts` (``device``, ``precision``, ``lead``, ``stride_s``, ``thresholds``,
    ``aggregate``, ``measure``, ``conformal``...).

    How it runs: ``batch_size`` windows per model call; ``workers`` reading/preprocessing
    processes (``0``: in this process; default: one less than the CPU count, at most 8, and none on
    a machine with 2 CPUs or fewer, where they only slow the model); ``progress`` a bar on stderr
    (default: when stderr is a terminal); ``on_error(key, reason)`` called for each input that
    fails (its row carries the ``error`` too).
    """

    def __init__(
        self,
        backend: Any,
        prepare: PrepareOptions | None = None,
        scoring: ScoringOptions | None = None,
        *,
        batch_size: int = 64,
        workers: int | None = None,
        progress: bool | None = None,
        on_error: Callable[[str, str], None] | None = None,
        **options: Any,
    ) -> None:
        if prepare is None or scoring is None or not isinstance(backend, Backend):
            backend, made_prepare, made_scoring = predictor_parts(backend, batch_size=batch_size, **options)
            prepare, scoring = prepare or made_prepare, scoring or made_scoring
        elif options:
            raise TypeError(
                f"{', '.join(sorted(options))}: options for making the parts from a model; "
                "with a backend, prepare and scoring given, set them on those"
            )
        self.backend: Backend = backend
        self.prepare: PrepareOptions = prepare  # how inputs are read and prepared
        self.scoring: ScoringOptions = scoring
        self.contract: InputContract = prepare.contract
        if self.contract.n_leads != backend.config.in_channels:
            raise ValueError(
                f"contract names {self.contract.n_leads} leads, the model takes {backend.config.in_channels}"
            )
        if len(scoring.labels) != backend.config.n_classes:
            raise ValueError(
                f"{len(scoring.labels)} labels to score, the model has {backend.config.n_classes} outputs"
            )
        self.precision = backend.precision
        self.runtime = backend.runtime
        self.batch_size = max(1, int(batch_size))
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # On 2 CPUs a reading process only takes cycles from the model (measured: 18.4 vs 21.1 files/s)
        self.workers = (0 if cpus <= 2 else min(cpus - 1, 8)) if workers is None else max(0, int(workers))
        self.progress = progress
        self.on_error = on_error
        info = getattr(backend, "info", None)
        self.model_name = (
            info.name
            if info is not None and info.name
            else (info.provenance.get("file") if info is not None else None)
        ) or "Net1D"
        self.preprocessing = _preprocessing_text(self.contract, prepare.lead)

    # the scoring options, by the names the predictor has always had
    @property
    def labels(self) -> list[str]:
        return list(self.scoring.labels)

    @property
    def thresholds(self) -> np.ndarray:
        return self.scoring.thresholds

    @property
    def aggregate(self) -> str:
        return self.scoring.aggregate

    @property
    def task(self) -> str:
        return self.scoring.task

    @property
    def conformal(self) -> Any:
        return self.scoring.conformal

    # ------------------------------------------------------------------ input stream

    def _items(self, inputs: Any) -> Iterator[Source | ECGRecord | PreparedItem]:
        if isinstance(inputs, (str, os.PathLike, ECGRecord, np.ndarray)) or (
            isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], np.ndarray)
        ):
            inputs = [inputs]
        for i, item in enumerate(inputs):
            if isinstance(item, (str, os.PathLike)):
                yield from expand_inputs([item])
            elif isinstance(item, Source):
                yield item
            elif isinstance(item, (ECGRecord, PreparedItem)):  # prepared elsewhere (an archive run's reader)
                yield item
            else:
                try:
                    yield self._array_record(item, i)
                except ECGInputError as exc:
                    yield PreparedItem(key=exc.source, error=exc.reason)

    def _array_record(self, item: Any, i: int) -> ECGRecord:
        fs = self.contract.fs
        if isinstance(item, tuple):
            item, fs = item
        arr = np.asarray(item, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[0] != self.contract.n_leads:
            raise ECGInputError(
                f"array[{i}]",
                f"expected ({self.contract.n_leads}, samples) in the "
                f"contract's lead order {' '.join(self.contract.leads)}, got {arr.shape}",
            )
        return ECGRecord(signal=arr, fs=float(fs), leads=self.contract.leads, record_id=f"array[{i}]")

    def _prepared(self, items: Iterable[Source | ECGRecord | PreparedItem]) -> Iterator[PreparedItem]:
        return prepared_stream(items, self.prepare, self.workers)

    # ------------------------------------------------------------------ model

    def forward(self, windows: np.ndarray, features: bool = False) -> np.ndarray:
        """Prepared windows (N, leads, samples) -> per-window outputs (N, labels): probabilities
        (or values, for regression) by the model's task, or pooled features with ``features``.
        Runs in batches of ``batch_size`` on the backend."""
        outs = []
        for i in range(0, len(windows), self.batch_size):
            logits, feats = self.backend.run(windows[i : i + self.batch_size])
            outs.append(feats if features else self._activate(logits))
        if not outs:
            return np.zeros((0, self.backend.num_features if features else len(self.labels)), np.float32)
        return np.concatenate(outs)

    def _activate(self, logits: np.ndarray) -> np.ndarray:
        info = self.backend.info
        return info.activate(logits) if info is not None else 1.0 / (1.0 + np.exp(-logits))

    def _scored(self, inputs: Any, features: bool) -> Iterator[tuple[PreparedItem, np.ndarray | None]]:
        """(record, per-window outputs) in input order; windows of several records share batches."""
        items = self._items(inputs)
        pending: deque[list[Any]] = deque()  # [prepared, outputs or None]
        batch: list[tuple[list[Any], np.ndarray]] = []
        batched = 0

        def flush() -> None:
            nonlocal batched
            if not batch:
                return
            out = self.forward(np.concatenate([w for _, w in batch]), features)
            pos = 0
            for slot, w in batch:
                slot[1] = out[pos : pos + len(w)]
                pos += len(w)
            batch.clear()
            batched = 0

        bar = self._bar()
        try:
            for prep in self._prepared(items):
                slot = [prep, None]
                pending.append(slot)
                if prep.error is None and prep.windows is not None:
                    batch.append((slot, prep.windows))
                    batched += len(prep.windows)
                    prep.windows = None  # the batch holds it now; dropped once scored
                    if batched >= self.batch_size:
                        flush()
                while pending and (pending[0][0].error is not None or pending[0][1] is not None):
                    done = pending.popleft()
                    if bar is not None:
                        bar.update(1)
                    yield done[0], done[1]
            flush()
            while pending:
                done = pending.popleft()
                if bar is not None:
                    bar.update(1)
                yield done[0], done[1]
        finally:
            if bar is not None:
                bar.close()

    def _bar(self) -> Any:
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        from tqdm import tqdm

        return tqdm(unit="ECG", desc="ecgfounder", file=sys.stderr, mininterval=0.5)

    def _report(self, prep: PreparedItem) -> None:
        if prep.error is not None:
            log.warning("%s: %s", prep.key, prep.error)
            if self.on_error is not None:
                self.on_error(prep.key, prep.error)

    # ------------------------------------------------------------------ public API

    def iter_rows(self, inputs: Any, *, per_window: bool = False) -> Iterator[dict[str, Any]]:
        """Rows in the one schema (:mod:`ecgfounder.infer.rows`: findings and flags as lists,
        ``probabilities`` as a mapping), one by one, in input order."""
        info = getattr(self.backend, "info", None)
        if info is not None and getattr(info, "task", None) == "embedding":
            from ..errors import ECGFounderError

            raise ECGFounderError(
                f"{self.model_name}: a pretrained backbone without a head has no labels to predict; "
                "use `ecgfounder embed`, or fine-tune it (`train --init FILE`)"
            )
        for prep, probs in self._scored(inputs, features=False):
            self._report(prep)
            common = dict(
                flags=prep.flags,
                error=prep.error,
                model=self.model_name,
                preprocessing=self.preprocessing,
                duration_s=prep.duration_s,
                extras=self._extras(prep),
            )
            if probs is None:
                row = record_row(
                    prep.key, None, self.scoring, window=(None, None) if per_window else None, **common
                )
                if self.conformal is not None and not per_window:
                    row.update(conformal_set=[], abstain=True)
                yield row
            elif per_window:
                for w, (p, start) in enumerate(zip(probs, prep.starts_s)):
                    yield record_row(
                        prep.key, p, self.scoring, n_windows=len(probs), window=(w, start), **common
                    )
            else:
                p = self.record_probabilities(probs)
                row = record_row(prep.key, p, self.scoring, n_windows=len(probs), **common)
                if self.conformal is not None:
                    label_set = self.conformal.sets(
                        np.array([[row["probabilities"][n] for n in self.conformal.labels]])
                    )[0]
                    row.update(conformal_set=list(label_set), abstain=self.conformal.abstain(label_set))
                yield row

    def iter_predict(self, inputs: Any, *, per_window: bool = False) -> Iterator[dict[str, Any]]:
        """Rows (dicts) one by one, in input order, flattened as tables hold them; see :meth:`predict`."""
        for row in self.iter_rows(inputs, per_window=per_window):
            flat = flatten_row(row)
            if "conformal_set" in flat:
                flat["conformal_set"] = "; ".join(flat["conformal_set"])
            yield flat

    def _extras(self, prep: PreparedItem) -> dict[str, Any] | None:
        if self.prepare.extras is None:
            return None
        from ..measurement.core import MEASURE_COLUMNS

        return prep.extras or {k: (float("nan") if k != "measure_flags" else "") for k in MEASURE_COLUMNS}

    def record_probabilities(self, window_probs: Any) -> np.ndarray:
        """A record's outputs from its window outputs (windows, labels), by this predictor's
        ``aggregate``."""
        return self.scoring.record_outputs(window_probs)

    def predict(self, inputs: Any, *, per_window: bool = False) -> Any:
        """A pandas DataFrame: one row per record (or per window with ``per_window=True``) with
        ``record``, ``findings`` (labels at or above their threshold, most probable first),
        ``flags``, ``error``, ``model``, ``preprocessing``, ``n_windows``, ``duration_s`` and one
        probability column per label. Failed inputs have ``error`` set and NaN probabilities."""
        import pandas as pd

        return pd.DataFrame.from_records(list(self.iter_predict(inputs, per_window=per_window)))

    def top_labels(self, ecg: Any, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` most probable labels of one ECG (a file or a record) with their probabilities;
        an unusable input raises :class:`~ecgfounder.errors.ECGInputError`."""
        row = next(self.iter_predict([ecg]))
        if row["error"]:
            raise ECGInputError(row["record"], row["error"])
        return sorted(((label, float(row[label])) for label in self.labels), key=lambda kv: -kv[1])[:n]

    def iter_embed(
        self, inputs: Any, *, per_window: bool = False
    ) -> Iterator[tuple[str, int | None, float | None, np.ndarray | None, str | None]]:
        """(record, window, start_s, vector, error) one by one; vector None where the input failed."""
        for prep, feats in self._scored(inputs, features=True):
            self._report(prep)
            if feats is None:
                yield prep.key, None, None, None, prep.error
            elif per_window:
                for w, (f, s) in enumerate(zip(feats, prep.starts_s)):
                    yield prep.key, w, s, f, None
            else:
                yield prep.key, None, None, feats.mean(0), None

    def embed(self, inputs: Any, *, per_window: bool = False) -> Embeddings:
        """Pooled embeddings (the released models: 1024 values) per record, averaged over its
        windows, or per window."""
        records, windows, starts, vectors, errors = [], [], [], [], {}
        for key, w, s, vec, err in self.iter_embed(inputs, per_window=per_window):
            if vec is None:
                errors[key] = err or "failed"
                continue
            records.append(key)
            windows.append(w)
            starts.append(s)
            vectors.append(vec.astype(np.float32))
        dim = self.backend.num_features
        return Embeddings(
            records=records,
            vectors=np.stack(vectors) if vectors else np.zeros((0, dim), np.float32),
            windows=windows if per_window else None,
            start_s=starts if per_window else None,
            errors=errors,
        )


def _preprocessing_text(contract: InputContract, lead: str | None) -> str:
    """What each row says about the preparation: recipe, leads used, rate, samples."""
    used = " ".join(contract.leads)
    if lead:
        from ..io.leads import canonical_lead

        lead = canonical_lead(lead) or lead
    if lead and contract.n_leads == 1 and lead != contract.leads[0]:
        # --lead: the lead actually fed
        used = f"{lead} (in the model's lead {contract.leads[0]} input)"
    return (
        f"{contract.preprocessing}: {contract.n_leads} lead{'s' if contract.n_leads != 1 else ''} "
        f"{used}, {contract.fs:g} Hz, {contract.n_samples} samples"
    )
