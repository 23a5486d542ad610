"""What the routes share: the model, the batcher, the parse workers, and turning a request into a
prepared ECG. One :class:`Service` per app, kept in ``app.state.service``."""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request

from .._version import __version__
from ..errors import clip
from .admission import MemoryBudget, lease_of
from .batcher import Batcher
from .errors import APIError, scrub_paths, scrub_value
from .settings import ServeSettings
from .uploads import UPLOAD_SUFFIXES, Parsed, ParseJob, safe_name
from .workers import ParsePool

__all__ = ["Service", "read_limited", "capped_receive", "figure_bytes"]


@dataclass
class Service:
    """The served model and the machinery around it. ``predictor`` runs any backend; ``net`` is
    the PyTorch model when there is one (explanations need gradients), else ``None``."""

    settings: ServeSettings
    predictor: Any
    batcher: Batcher = field(init=False)
    parsers: ParsePool = field(init=False)
    draw_pool: ThreadPoolExecutor = field(init=False)
    model_lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        s = self.settings
        self.info = self.predictor.backend.info
        self.net = getattr(self.predictor.backend, "model", None)
        self.contract = self.predictor.contract
        self.labels = list(self.info.labels or self.predictor.labels)
        self.batcher = Batcher(self.predictor, s.max_batch, s.batch_wait_ms / 1000)
        self.parsers = ParsePool(s.workers, memory_mb=s.worker_memory_mb, max_queue=s.max_queue)
        self.draw_pool = ThreadPoolExecutor(max(1, s.workers), thread_name_prefix="ecgfounder-draw")
        self.limit_bytes = int(s.max_upload_mb * 1024 * 1024)
        self.budget = MemoryBudget(int(s.memory_budget_mb * 1024 * 1024))
        self.parse_timeout = min(s.parse_timeout_s or s.timeout_s, s.timeout_s)
        self.index = None
        if s.index:
            from ..search import load_index

            self.index = load_index(s.index)
            if self.index.dim != self.predictor.backend.num_features:
                raise ValueError(
                    f"the index holds {self.index.dim}-value embeddings, the served model gives "
                    f"{self.predictor.backend.num_features}"
                )

    async def start(self) -> None:
        self.batcher.start()
        await self.parsers.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        await self.parsers.stop()
        self.draw_pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ requests

    def job(self, **fields: Any) -> ParseJob:
        s = self.settings
        return ParseJob(
            contract=self.contract,
            limits=s.read_limits,
            max_duration_s=s.max_duration_s,
            max_unpacked_bytes=int(s.max_unpacked_mb * 1024 * 1024),
            max_zip_members=s.max_zip_members,
            max_zip_ratio=s.max_zip_ratio,
            **fields,
        )

    async def prepared(self, request: Request, lead: str | None, keep_s: float | None = 0.0) -> Parsed:
        """The request's ECG, parsed in a worker process: the record as read with the first
        ``keep_s`` seconds of its signal (``None``: all), and its prepared windows. The result's
        size is reserved in the server's memory budget (503 when it is spent) until the answer ends."""
        s = self.settings
        lease = lease_of(request)

        def reserve(n_bytes: int) -> None:
            if lease is not None:
                lease.reserve(n_bytes, "the parsed recording")

        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            raw = await read_limited(request, self.limit_bytes, s.max_upload_mb)
            return await self.parsers.run(
                self.job(body=raw, lead=lead, keep_s=keep_s), self.parse_timeout, reserve
            )
        if ctype != "multipart/form-data":
            raise APIError(
                415,
                "unsupported_media_type",
                f"send multipart/form-data (field 'file', one or "
                f"more files) or application/json, not {ctype[:60] or 'nothing'!r}",
            )
        # The form parser takes the body chunk by chunk from the admission's buffer (each chunk is
        # dropped there once handed over; files past 1 MB spool to disk): no second copy of the body.
        capped = capped_receive(request.receive, self.limit_bytes, s.max_upload_mb)
        try:
            form = await Request(request.scope, capped).form(max_files=s.max_zip_members, max_fields=32)
        except APIError:
            raise
        except Exception as exc:  # noqa: BLE001 - multipart parser errors
            raise APIError(422, "bad_multipart", f"cannot parse the upload ({clip(str(exc), 120)})") from None
        tmp = Path(tempfile.mkdtemp(prefix="ecgfounder-serve-"))
        try:
            uploads = [v for v in form.getlist("file") if hasattr(v, "read")]
            if not uploads:
                raise APIError(422, "no_file", "no file in form field 'file'")
            for up in uploads:
                name = safe_name(up.filename, "upload.bin")
                if Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
                    raise APIError(
                        415,
                        "unsupported_file_type",
                        f"{name}: unsupported file type; send WFDB "
                        f"(.hea + .dat/.mat), EDF/BDF, XML, DICOM, CSV/TSV, .npy/.npz, HDF5 or .zip",
                    )
                with open(tmp / name, "wb") as dst:
                    shutil.copyfileobj(up.file, dst)
                await up.close()
            fs, leads = form.get("fs"), form.get("leads")
            return await self.parsers.run(
                self.job(
                    folder=str(tmp),
                    fs=fs if isinstance(fs, str) else None,
                    leads=leads if isinstance(leads, str) else None,
                    lead=lead,
                    keep_s=keep_s,
                ),
                self.parse_timeout,
                reserve,
            )
        finally:
            await form.close()
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ answers

    def provenance(self) -> dict[str, Any]:
        weights = scrub_value(dict(self.info.provenance or {}))
        return {
            "model": scrub_paths(self.predictor.model_name),
            "ecgfounder_version": __version__,
            "preprocessing": self.predictor.preprocessing,
            "weights": weights,
            "task": self.info.task,
            "runtime": self.predictor.runtime,
        }

    async def measurements(self, record: Any) -> dict[str, Any]:
        """HR, PR, QRS, QT, QTc, axes and flags of a record (``ecgfounder.measure``), off the event
        loop; values that cannot be measured are null, with the reason in ``measure_flags``."""
        import asyncio
        import math

        from ..measurement.core import measure_row

        row = await asyncio.get_running_loop().run_in_executor(self.draw_pool, measure_row, record)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}

    def findings(self, probs: np.ndarray) -> list[dict[str, Any]]:
        """The ``top_k`` most probable labels, each marked positive or not (``top_findings``)."""
        return self.predictor.scoring.top(probs, self.settings.top_k)


def figure_bytes(fig: Any, fmt: str) -> bytes:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt, dpi=100, facecolor="white")
    return buf.getvalue()


def capped_receive(receive: Any, limit: int, limit_mb: float) -> Any:
    """``receive`` refusing (413) once the body passes ``limit`` bytes, even without a Content-Length."""
    seen = 0

    async def capped() -> Any:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise APIError(
                413, "upload_too_large", f"request body exceeds the {limit_mb:g} MB limit", limit_mb=limit_mb
            )
        return message

    return capped


async def read_limited(request: Any, limit: int, limit_mb: float) -> bytes:
    """Read the body, refusing (413) past ``limit`` bytes even without a Content-Length header."""
    return await Request(request.scope, capped_receive(request.receive, limit, limit_mb)).body()
