"""The one read -> record -> prepare stream: inputs in, model-ready windows out, in input order.

Every consumer of ECG files goes through here: the :class:`~ecgfounder.Predictor`, the training
window cache and shards, int8 calibration, and anyone scoring records in Python. Files are read
in worker processes, a bounded number of records ahead of the consumer, so memory stays flat
however many files stream through; a file that cannot be used becomes a :class:`PreparedItem`
with ``error`` set and the stream goes on.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext

import numpy as np

from ..contract import InputContract
from ..errors import ECGFounderError
from ..io.record import ECGRecord
from ..io.sources import Source
from .quality import QualityThresholds

__all__ = ["PrepareOptions", "PreparedItem", "prepare_item", "prepared_stream", "warm_up", "worker_context"]


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
    if "torch" in sys.modules:  # a forked worker has it: one thread; reading never imports it
        sys.modules["torch"].set_num_threads(1)


def warm_up() -> None:
    """Import the readers and run the preparation once on a tiny record (compiling or loading the
    preprocessing kernels), so that a process forked after this starts warm."""
    import wfdb  # noqa: F401 - the commonest format's library (0.7 s to import; readers import it lazily)

    from ..io import reader  # noqa: F401 - every format's reader
    from .pipeline import prepare

    rng = np.random.default_rng(0)
    prepare(ECGRecord(rng.standard_normal((1, 6000)), 500.0, ("I",)), InputContract(leads=("I",)), workers=1)


def worker_context() -> BaseContext:
    """How reading processes start.

    Forking the calling process copies every lock of every thread running there in whatever state
    it is, and every object it holds; a child that touches one can wait forever. That happened: a
    training run's readers hung for good in the garbage collection of an ONNX Runtime session an
    earlier call in the same process had left (its thread pool's condition variable, copied
    mid-wait). So workers come from a forkserver (started once per process from a clean state,
    after :func:`warm_up`; each worker is a fork of it), except when the main module is a script
    run by path: a forkserver's (or spawn's) children import that script again, which runs an
    unguarded script's code (no ``if __name__ == "__main__":``) a second time and breaks the pool.
    There the caller is forked, with the garbage collector kept off everything it had (see
    :func:`prepared_stream`). Off Linux, ``spawn`` as Python's own default there (forking is unsafe
    on macOS, absent on Windows).
    """
    if not sys.platform.startswith("linux"):
        return mp.get_context("spawn")
    main = sys.modules.get("__main__")
    if getattr(main, "__spec__", None) is None and getattr(main, "__file__", None) is not None:
        return mp.get_context("fork")  # a script run by path
    ctx = mp.get_context("forkserver")
    # the preload list is the process's forkserver's: it counts only until the server starts
    ctx.set_forkserver_preload([f"{__package__}._preload_hook"])
    return ctx


@contextmanager
def _collector_off_inherited(ctx: BaseContext) -> Iterator[None]:
    """Around a submit that may fork: the objects the child inherits are frozen (``gc.freeze``), so
    its collector never runs their finalisers (an inference session, a CUDA tensor...) there."""
    if ctx.get_start_method() != "fork":
        yield
        return
    ours = gc.get_freeze_count() == 0  # a caller's own freeze (a preforking server) is left as it is
    gc.freeze()
    try:
        yield
    finally:
        if ours:
            gc.unfreeze()


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
    ctx = worker_context()
    ahead = 2 * workers + 4
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
        queue: deque[tuple[str, Future[PreparedItem] | PreparedItem]] = deque()
        for item in items:
            if isinstance(item, Source):
                with _collector_off_inherited(ctx):
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
