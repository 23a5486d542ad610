"""The HTTP service: FastAPI app with prediction, embeddings, plots, explanations and a web page.

Data flow per request: upload (body capped, files written to a private temporary directory) or
JSON array -> a parse worker process (:mod:`.workers`: unzip under one cap, :func:`~ecgfounder.read_ecg`
under the service's reading budget, duration check, :func:`~ecgfounder.prepare`; killed past the
deadline, memory-capped) -> the :class:`_Batcher`, which gathers the windows of requests arriving
together into one model batch on its own thread -> JSON. The event loop never runs reading,
preprocessing or the model, and no parsing runs in the server process.

Safety (``docs/security.md``): every error is a JSON body ``{"error": {"code", "message", ...}}``
with a 4xx status (5xx only for a timeout, 504, a full queue, 503 with ``Retry-After``, or a bug,
500, without a traceback) and without server paths; size limit -> 413 naming the limit; duration
limit -> 422 naming it; the optional API key is compared in constant time; only the allowed
``Host`` names are answered; security headers on every response; CORS is off unless origins are
given; temporary files are removed when the request ends.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import ECGFounderError
from ..io import ReadLimits
from .errors import APIError, scrub_paths
from .security import AllowedHostsMiddleware, SecurityHeadersMiddleware, api_docs_html, default_allowed_hosts
from .uploads import UPLOAD_SUFFIXES, ParseJob, safe_name
from .workers import ParsePool

log = logging.getLogger("ecgfounder.serve")

__all__ = ["ServeSettings", "create_app"]

_PAGE = Path(__file__).with_name("static") / "index.html"

# What one upload may declare or unpack in the service: 20 million values is 600 s of 12 leads at
# 2.7 kHz, or of 15 leads at 2 kHz; 200 MB bounds a deflated DICOM data set or an XML file.
SERVICE_READ_LIMITS = ReadLimits(max_values=20_000_000, max_channels=64, max_bytes=200 << 20,
                                 max_header_bytes=256 << 10)


@dataclass
class ServeSettings:
    """Limits and switches of the service (all have safe defaults; see docs/security.md)."""

    model: str = "ecgfounder-12lead"
    max_upload_mb: float = 20.0          # whole request body
    max_unpacked_mb: float = 100.0       # all zips of one request, unpacked
    max_duration_s: float = 600.0        # longest recording accepted
    max_zip_members: int = 16
    max_zip_ratio: float = 50.0          # uncompressed / compressed, per member (zip bombs)
    timeout_s: float = 60.0              # per request; a parse still running then is killed
    parse_timeout_s: float | None = None  # reading + preparing one upload (None: timeout_s)
    api_key: str | None = None           # X-API-Key header required when set
    cors_origins: list[str] = field(default_factory=list)
    allowed_hosts: list[str] | None = None  # Host names answered; None: loopback names ("*": any)
    max_batch: int = 32                  # windows per model call
    batch_wait_ms: float = 5.0           # how long the batcher waits for company
    top_k: int = 5
    workers: int = 2                     # parse worker processes (uploads parsed at once)
    worker_memory_mb: int = 1024         # address space a parse may add to an idle worker's
    max_queue: int = 16                  # uploads waiting for a worker; past that 503 + Retry-After
    max_inflight: int = 64               # requests being answered at once (not /healthz); then 503
    head_timeout_s: float = 10.0         # a connection must send its request head within this
    read_limits: ReadLimits = field(default_factory=lambda: SERVICE_READ_LIMITS)


# --------------------------------------------------------------------------- batching

class _Batcher:
    """Runs the model on one thread; requests' windows arriving within ``wait`` share a batch."""

    def __init__(self, predictor: Any, max_batch: int, wait_s: float) -> None:
        self.predictor = predictor
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.queue: asyncio.Queue[tuple[np.ndarray, bool, asyncio.Future[np.ndarray]]] | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="ecgfounder-model")
        self.task: asyncio.Task[None] | None = None
        self.batches = 0
        self.windows = 0

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, windows: np.ndarray, features: bool) -> np.ndarray:
        assert self.queue is not None
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self.queue.put((windows, features, fut))
        return await fut

    async def _run(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            group = [first]
            size = len(first[0])
            deadline = loop.time() + self.wait_s
            while size < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                group.append(item)
                size += len(item[0])
            for features in (False, True):
                part = [g for g in group if g[1] == features and not g[2].cancelled()]
                if not part:
                    continue
                stacked = np.concatenate([g[0] for g in part])
                try:
                    out = await loop.run_in_executor(self.executor, self.predictor._forward, stacked, features)
                except Exception as exc:  # noqa: BLE001 - handed to each waiting request
                    for g in part:
                        if not g[2].done():
                            g[2].set_exception(exc)
                    continue
                self.batches += 1
                self.windows += len(stacked)
                pos = 0
                for windows, _, fut in part:
                    if not fut.done():
                        fut.set_result(out[pos:pos + len(windows)])
                    pos += len(windows)


# --------------------------------------------------------------------------- app

def create_app(settings: ServeSettings | None = None, model: Any = None) -> FastAPI:
    """The FastAPI application. ``model``: an already loaded model (else ``settings.model``)."""
    from ..infer import Predictor
    from ..models import load_model

    settings = settings or ServeSettings()
    net = model if model is not None else load_model(settings.model)
    predictor = Predictor(net, workers=0, progress=False, batch_size=settings.max_batch)
    contract = predictor.contract
    labels = list(net.info.labels or predictor.labels)
    batcher = _Batcher(predictor, settings.max_batch, settings.batch_wait_ms / 1000)
    parsers = ParsePool(settings.workers, memory_mb=settings.worker_memory_mb, max_queue=settings.max_queue)
    pool = ThreadPoolExecutor(max(1, settings.workers), thread_name_prefix="ecgfounder-draw")
    model_lock = threading.Lock()  # explanations use the model outside the batcher
    started = time.time()

    async def lifespan(app: Any):  # noqa: ANN202
        batcher.start()
        await parsers.start()
        yield
        await batcher.stop()
        await parsers.stop()
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="ecgfounder", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="ECGFounder predictions, embeddings, plots and explanations for ECG files.")

    def error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
              **extra: Any) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": scrub_paths(message), **extra}}, status_code=status,
                            headers=headers)

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error(exc.status, exc.code, exc.message, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return error(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error(500, "internal_error", "unexpected server error (logged)")

    limit_bytes = int(settings.max_upload_mb * 1024 * 1024)
    open_paths = {"/", "/healthz", "/docs", "/openapi.json"}
    inflight = [0]

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if settings.api_key and request.url.path not in open_paths and request.method != "OPTIONS":
            given = request.headers.get("x-api-key", "")
            if not secrets.compare_digest(given.encode(), settings.api_key.encode()):
                return error(401, "unauthorised", "missing or wrong X-API-Key header")
        length = request.headers.get("content-length")
        if length is not None:
            if not (length.isdigit() and len(length) <= 18):
                return error(400, "bad_content_length", "Content-Length is not a number")
            if int(length) > limit_bytes:
                return error(413, "upload_too_large", f"request body of {int(length):,} bytes exceeds the "
                             f"{settings.max_upload_mb:g} MB limit", limit_mb=settings.max_upload_mb)
        counted = request.url.path != "/healthz"
        if counted and inflight[0] >= settings.max_inflight:
            return error(503, "busy", f"the server is answering {inflight[0]} requests; try again shortly",
                         headers={"Retry-After": "2"})
        inflight[0] += counted
        try:
            return await asyncio.wait_for(call_next(request), settings.timeout_s)
        except asyncio.TimeoutError:
            return error(504, "timeout", f"request took longer than the {settings.timeout_s:g} s limit",
                         limit_s=settings.timeout_s)
        finally:
            inflight[0] -= counted

    # Added after the guard, so outside it: even a 401 carries the CORS headers.
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Content-Type"])
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(AllowedHostsMiddleware, hosts=settings.allowed_hosts or default_allowed_hosts())

    def job(**fields: Any) -> ParseJob:
        return ParseJob(contract=contract, limits=settings.read_limits, max_duration_s=settings.max_duration_s,
                        max_unpacked_bytes=int(settings.max_unpacked_mb * 1024 * 1024),
                        max_zip_members=settings.max_zip_members, max_zip_ratio=settings.max_zip_ratio, **fields)

    parse_timeout = min(settings.parse_timeout_s or settings.timeout_s, settings.timeout_s)

    async def prepared(request: Request, lead: str | None) -> tuple[Any, Any]:
        """The request's ECG as read and as prepared, parsed in a worker process."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            raw = await _read_limited(request, limit_bytes, settings)
            return await parsers.run(job(body=raw, lead=lead), parse_timeout)
        if ctype != "multipart/form-data":
            raise APIError(415, "unsupported_media_type", f"send multipart/form-data (field 'file', one or "
                           f"more files) or application/json, not {ctype[:60] or 'nothing'!r}")
        raw = await _read_limited(request, limit_bytes, settings)

        async def replay() -> dict[str, Any]:  # the capped body, for the form parser
            return {"type": "http.request", "body": raw, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=settings.max_zip_members, max_fields=32)
        except Exception as exc:  # noqa: BLE001 - multipart parser errors
            raise APIError(422, "bad_multipart", f"cannot parse the upload ({str(exc)[:120]})") from None
        tmp = Path(tempfile.mkdtemp(prefix="ecgfounder-serve-"))
        try:
            uploads = [v for v in form.getlist("file") if hasattr(v, "read")]
            if not uploads:
                raise APIError(422, "no_file", "no file in form field 'file'")
            for up in uploads:
                name = safe_name(up.filename, "upload.bin")
                if Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
                    raise APIError(415, "unsupported_file_type", f"{name}: unsupported file type; send WFDB "
                                   f"(.hea + .dat/.mat), EDF/BDF, XML, DICOM, CSV/TSV, .npy/.npz, HDF5 or .zip")
                with open(tmp / name, "wb") as dst:
                    shutil.copyfileobj(up.file, dst)
                await up.close()
            fs, leads = form.get("fs"), form.get("leads")
            return await parsers.run(job(folder=str(tmp), fs=fs if isinstance(fs, str) else None,
                                         leads=leads if isinstance(leads, str) else None, lead=lead),
                                     parse_timeout)
        finally:
            await form.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def provenance() -> dict[str, Any]:
        info = net.info
        weights = {k: scrub_paths(v) if isinstance(v, str) else v for k, v in (info.provenance or {}).items()}
        return {"model": scrub_paths(predictor.model_name), "ecgfounder_version": __version__,
                "preprocessing": predictor.preprocessing, "weights": weights, "task": info.task}

    def findings(probs: np.ndarray) -> list[dict[str, Any]]:
        order = np.argsort(-probs)[: settings.top_k]
        return [{"label": labels[i], "probability": float(probs[i]),
                 "positive": bool(probs[i] >= predictor.thresholds[i])} for i in order]

    @app.get("/healthz", summary="liveness and model status")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": scrub_paths(predictor.model_name),
                "uptime_s": round(time.time() - started, 1), "batches": batcher.batches, "windows": batcher.windows,
                "parse_workers": {"size": parsers.size, "busy": parsers.busy, "replaced": parsers.killed}}

    @app.get("/v1/models", summary="the served model: name, input contract, labels")
    async def models() -> dict[str, Any]:
        c = contract
        return {"models": [{"name": scrub_paths(predictor.model_name), "task": net.info.task, "labels": labels,
                            "thresholds": [float(t) for t in predictor.thresholds],
                            "contract": {"fs": c.fs, "n_samples": c.n_samples, "leads": list(c.leads),
                                         "units": c.units, "preprocessing": c.preprocessing},
                            "licence": getattr(net.info, "license", None), **provenance()}]}

    @app.post("/v1/predict", summary="probabilities by label for one ECG (upload or JSON array)")
    async def predict(request: Request, lead: str | None = None, per_window: bool = False) -> dict[str, Any]:
        record, prep = await prepared(request, lead)
        per = await batcher.submit(prep.windows, False)
        probs = per.mean(0) if predictor.aggregate == "mean" else per.max(0)
        out: dict[str, Any] = {
            "record": record.record_id, "duration_s": round(record.duration_s, 3), "fs": record.fs,
            "leads": list(record.leads), "n_windows": len(prep.windows),
            "probabilities": {lab: float(p) for lab, p in zip(labels, probs)},
            "top_findings": findings(probs), "quality_flags": list(prep.flags),
            "notes": list(prep.record.notes), "provenance": provenance()}
        if per_window:
            out["windows"] = [{"start_s": s, "probabilities": {lab: float(p) for lab, p in zip(labels, row)}}
                              for s, row in zip(prep.starts_s, per)]
        return out

    @app.post("/v1/embed", summary="pooled embedding of one ECG (mean over its 10 s windows)")
    async def embed(request: Request, lead: str | None = None) -> dict[str, Any]:
        record, prep = await prepared(request, lead)
        feats = await batcher.submit(prep.windows, True)
        vec = feats.mean(0)
        return {"record": record.record_id, "n_windows": len(prep.windows), "dim": int(vec.size),
                "embedding": [round(float(v), 7) for v in vec], "quality_flags": list(prep.flags),
                "provenance": provenance()}

    @app.post("/v1/plot", summary="the ECG on standard paper (25 mm/s, 10 mm/mV) as SVG or PNG")
    async def plot(request: Request, format: str = "svg", layout: str = "auto", findings_top: int = 3,
                   lead: str | None = None) -> Response:
        from ..viz import plot_ecg

        if format not in ("svg", "png"):
            raise APIError(422, "bad_format", "format must be svg or png")
        record, prep = await prepared(request, lead)
        per = await batcher.submit(prep.windows, False)
        probs = per.mean(0)
        top = [(f["label"], f["probability"]) for f in findings(probs)[: max(0, findings_top)]]

        def draw() -> bytes:
            fig, _ = plot_ecg(record, layout=layout, findings=top or None, max_rows=3)
            return _figure_bytes(fig, format)
        try:
            data = await asyncio.get_running_loop().run_in_executor(pool, draw)
        except ECGFounderError as exc:
            raise APIError(422, "cannot_plot", str(exc)) from None
        return Response(data, media_type="image/svg+xml" if format == "svg" else "image/png")

    @app.post("/v1/explain", summary="attributions for one label, as JSON and drawn over the trace")
    async def explain_ep(request: Request, label: str | None = None, method: str = "integrated-gradients",
                         lead: str | None = None, steps: int = 32) -> dict[str, Any]:
        from ..explain import METHODS, explain
        from ..viz import plot_ecg

        if method not in METHODS:
            raise APIError(422, "bad_method", f"method must be one of {', '.join(METHODS)}")
        if not 2 <= steps <= 256:
            raise APIError(422, "bad_steps", "steps must be in [2, 256]")
        record, prep = await prepared(request, lead)
        per = await batcher.submit(prep.windows, False)
        probs = per.mean(0)
        target = label or labels[int(np.argmax(probs))]
        if target not in labels:
            raise APIError(422, "unknown_label", f"{target!r} is not one of the model's labels")

        def run() -> dict[str, Any]:
            with model_lock:
                expl = explain(net, prep, target, method=method, steps=steps)  # type: ignore[arg-type]
            if len(expl.leads) == 1 and expl.leads[0] not in record.leads and record.n_leads == 1:
                expl.leads = [record.leads[0]]
            fig, _ = plot_ecg(record, layout="single" if len(expl.leads) == 1 else "auto",
                              lead=expl.leads[0] if len(expl.leads) == 1 else None, start_s=expl.start_s,
                              attribution=expl, findings=f"{expl.label} {expl.score:.2f}", max_rows=1)
            return {**expl.to_dict(max_points=500), "svg": _figure_bytes(fig, "svg").decode()}
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, run)
        except ECGFounderError as exc:
            raise APIError(422, "cannot_explain", str(exc)) from None

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(api_docs_html(app.openapi()),
                            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_PAGE.read_text(encoding="utf-8"),
                            headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                                     "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"})

    app.state.settings = settings
    app.state.batcher = batcher
    app.state.parsers = parsers
    return app


def _figure_bytes(fig: Any, fmt: str) -> bytes:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt, dpi=100, facecolor="white")
    return buf.getvalue()


async def _read_limited(request: Any, limit: int, settings: ServeSettings) -> bytes:
    """Read the body, refusing (413) past ``limit`` bytes even without a Content-Length header."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, "upload_too_large", f"request body exceeds the {settings.max_upload_mb:g} MB "
                           "limit", limit_mb=settings.max_upload_mb)
        chunks.append(chunk)
    return b"".join(chunks)
