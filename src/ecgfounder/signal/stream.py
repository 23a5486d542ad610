"""The one read -> record -> prepare stream: inputs in, model-ready windows out, in input order.

Every consumer of ECG files goes through here: the :class:`~ecgfounder.Predictor`, the training
window cache and shards, int8 calibration, and anyone scoring records in Python. Files are read
in worker processes, a bounded number of records ahead of the consumer, so memory stays flat
however many files stream through; a file that cannot be used becomes a :class:`PreparedItem`
with ``error`` set and the stream goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..contract import InputContract
from ..errors import ECGFounderError
from ..io.record import ECGRecord
from ..io.sources import Source
from .quality import QualityThresholds

__all__ = ["PrepareOptions", "PreparedItem", "prepare_item", "prepared_stream"]


@dataclass(frozen=True)
class PrepareOptions:
    """How inputs are read and prepared: the model's contract, the channel for a one-lead model,
    the window stride, and what :func:`~ecgfounder.read_ecg` needs for files that cannot say it."""

    contract: InputContract
    lead: str | None = None
    stride_s: float | None = None
    fs: float | None = None
    leads: tuple[str, ...] | None = None
    units: str | None = None
    #: a function of the read record whose dict rides along with the item (e.g. measurements);
    #: module-level, so worker processes can run it
    extras: Callable[[ECGRecord], dict] | None = None
    #: quality checks and their thresholds (``QualityThresholds(artifacts=ArtifactThresholds(
    #: enabled=False))`` skips the noise/artefact/electrode checks, about 3 ms per 12-lead record)
    quality: QualityThresholds = field(default_factory=QualityThresholds)


@dataclass
class PreparedItem:
    """One input, prepared: its windows (W, leads, samples) and where they start, or an ``error``."""

    key: str
    windows: np.ndarray | None = None
    starts_s: list[float] = field(default_factory=list)
    duration_s: float | None = None
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    extras: dict = field(default_factory=dict)


def prepare_item(item: Source | ECGRecord, options: PrepareOptions) -> PreparedItem:
    """Read (if a :class:`~ecgfounder.io.sources.Source`) and prepare one record; every expected
    failure becomes ``error`` (the reason, without the file name the key already gives)."""
    from ..io.reader import read_ecg
    from .pipeline import prepare

    key = item.key if isinstance(item, Source) else (item.source or item.record_id or "<array>")
    try:
        if isinstance(item, Source):
            rec = read_ecg(
                item.path, fs=options.fs, leads=options.leads, units=options.units, index=item.index or 0
            )
        else:
            rec = item
        p = prepare(
            rec,
            options.contract,
            lead=options.lead,
            stride_s=options.stride_s,
            workers=1,
            quality=options.quality,
        )
    except ECGFounderError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        for prefix in (key, getattr(item, "path", None), getattr(item, "source", None)):
            if prefix and reason.startswith(f"{prefix}: "):
                reason = reason[len(prefix) + 2 :]
        return PreparedItem(key=key, error=reason)
    except Exception as exc:  # noqa: BLE001 - a record must never stop the stream
        return PreparedItem(key=key, error=f"{type(exc).__name__}: {exc}")
    extras = options.extras(rec) if options.extras is not None else {}  # the record as read: every lead
    return PreparedItem(
        key=key,
        windows=p.windows,
        starts_s=p.starts_s,
        duration_s=rec.duration_s,
        flags=list(p.flags),
        notes=list(p.record.notes),
        extras=extras,
    )


def _worker_init() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # pragma: no cover - torch absent or already initialised
        pass


def prepared_stream(
    items: Iterable[Source | ECGRecord | PreparedItem], options: PrepareOptions, workers: int = 0
) -> Iterator[PreparedItem]:
    """Prepared records in input order. Files (:class:`Source`) are read in ``workers`` processes
    (0: here), at most ``2 x workers + 4`` records ahead of the consumer; records already in memory
    are prepared here; items already prepared pass through."""
    if workers == 0:
        for item in items:
            yield item if isinstance(item, PreparedItem) else prepare_item(item, options)
        return
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    ahead = 2 * workers + 4
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
        queue: deque[tuple[str, Future[PreparedItem] | PreparedItem]] = deque()
        for item in items:
            if isinstance(item, Source):
                queue.append((item.key, pool.submit(prepare_item, item, options)))
            elif isinstance(item, PreparedItem):
                queue.append((item.key, item))
            else:
                queue.append(("", prepare_item(item, options)))
            while len(queue) > ahead:
                yield _result(*queue.popleft())
        while queue:
            yield _result(*queue.popleft())


def _result(key: str, item: Future[PreparedItem] | PreparedItem) -> PreparedItem:
    if isinstance(item, PreparedItem):
        return item
    try:
        return item.result()
    except Exception as exc:  # noqa: BLE001 - a crashed worker (out of memory...): report, go on
        return PreparedItem(key=key, error=f"reading process failed: {type(exc).__name__}: {exc}")
