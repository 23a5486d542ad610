"""The HTTP service: FastAPI app with prediction, embeddings, plots, explanations and a web page.

The package: ``app`` (settings, assembly, middleware, errors), ``routes`` (the routers),
``service`` (the state the routes share and request parsing), ``admission`` (API key, body
deadlines, slots per client and in all, the memory budget), ``uploads`` (what a parse worker
runs), ``workers`` (the parse worker pool), ``batcher`` (the model thread), ``memory`` (giving
heap memory back), ``security`` (hosts, headers, API page), ``server`` (uvicorn with a
request-head deadline).

Data flow per request: admission (body received whole under its deadlines and the memory budget,
then a slot) -> upload (files written to a private temporary directory) or
JSON array -> a parse worker process (:mod:`.workers`: unzip under one cap, :func:`~ecgfounder.read_ecg`
under the service's reading budget, duration check, :func:`~ecgfounder.prepare`; killed past the
deadline, memory-capped) -> the :class:`~.batcher.Batcher`, which gathers the windows of requests arriving
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

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from .admission import Admission, AdmissionState
from .errors import APIError, scrub_paths
from .memory import MemoryReleaser, configure_allocator
from .routes import api, pages
from .security import AllowedHostsMiddleware, SecurityHeadersMiddleware, default_allowed_hosts
from .service import Service
from .settings import ServeSettings

log = logging.getLogger("ecgfounder.serve")

__all__ = ["ServeSettings", "create_app"]

# --------------------------------------------------------------------------- app


def create_app(settings: ServeSettings | None = None, model: Any = None) -> FastAPI:
    """The FastAPI application. ``model``: a loaded model, an ``OnnxModel`` or a backend (else
    ``settings.model``: a registered name or a model file, ``.onnx`` included)."""
    from ..infer import Predictor

    settings = settings or ServeSettings()
    predictor = Predictor(
        model if model is not None else settings.model,
        workers=0,
        progress=False,
        batch_size=settings.max_batch,
    )
    service = Service(settings, predictor)

    async def lifespan(app: Any):  # noqa: ANN202
        configure_allocator()  # big buffers from mmap: given back to the system when freed
        await service.start()
        yield
        releaser.cancel()
        await service.stop()

    app = FastAPI(
        title="ecgfounder",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="ECGFounder predictions, embeddings, plots and explanations for ECG files.",
    )

    def error(
        status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": code, "message": scrub_paths(message), **extra}},
            status_code=status,
            headers=headers,
        )

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

    # Innermost: the API key, body deadlines and budget, slots; then CORS, headers, hosts outside it.
    releaser = MemoryReleaser()
    admission = AdmissionState()
    app.add_middleware(Admission, settings=settings, budget=service.budget, state=admission, on_idle=releaser)

    # Added after the admission, so outside it: even a 401 carries the CORS headers.
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(AllowedHostsMiddleware, hosts=settings.allowed_hosts or default_allowed_hosts())

    app.include_router(api)
    app.include_router(pages)
    app.state.service = service
    app.state.settings = settings
    app.state.batcher = service.batcher
    app.state.parsers = service.parsers
    app.state.releaser = releaser
    app.state.admission = admission
    return app
