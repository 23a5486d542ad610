"""The service's routes: ``api`` (health, models, predict, embed, plot, explain) and ``pages``
(the web page and the API page). Each route reads the :class:`~.service.Service` from
``request.app.state.service`` and leaves the work to library functions."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..errors import ECGFounderError
from ..infer.rows import record_row
from ..measurement.core import MAX_SECONDS as MEASURE_MAX_SECONDS
from .errors import APIError, scrub_paths
from .security import api_docs_html
from .service import Service, figure_bytes

__all__ = ["api", "pages"]

api = APIRouter()
pages = APIRouter()
_PAGE = Path(__file__).with_name("static") / "index.html"
#: Strips drawn by /v1/plot (10 s each), and the seconds of the recording the route needs back.
PLOT_ROWS = 3
PLOT_KEEP_S = 10.0 * PLOT_ROWS
#: Seconds of the recording measurements need: measure() reads the first MAX_SECONDS (and flags a
#: longer recording "first_60s", which the extra second keeps true).
MEASURE_KEEP_S = MEASURE_MAX_SECONDS + 1.0


def _service(request: Request) -> Service:
    return request.app.state.service


@api.get("/healthz", summary="liveness and model status")
async def healthz(request: Request) -> dict[str, Any]:
    svc = _service(request)
    adm = request.app.state.admission
    return {
        "status": "ok",
        "model": scrub_paths(svc.predictor.model_name),
        "uptime_s": round(time.time() - svc.started, 1),
        "batches": svc.batcher.batches,
        "windows": svc.batcher.windows,
        "parse_workers": {"size": svc.parsers.size, "busy": svc.parsers.busy, "replaced": svc.parsers.killed},
        "admission": {
            "answering": adm.inflight,
            "receiving_bodies": adm.receiving,
            "refused": dict(adm.refused),
        },
        "memory_budget_mb": {
            "limit": round(svc.budget.limit_mb, 1),
            "in_use": round(svc.budget.used / 2**20, 1),
            "peak": round(svc.budget.peak / 2**20, 1),
        },
    }


@api.get("/v1/models", summary="the served model: name, input contract, labels")
async def models(request: Request) -> dict[str, Any]:
    svc = _service(request)
    c = svc.contract
    return {
        "models": [
            {
                "name": scrub_paths(svc.predictor.model_name),
                "task": svc.info.task,
                "labels": svc.labels,
                "thresholds": [float(t) for t in svc.predictor.thresholds],
                "aggregate": svc.predictor.aggregate,
                "contract": {
                    "fs": c.fs,
                    "n_samples": c.n_samples,
                    "leads": list(c.leads),
                    "units": c.units,
                    "preprocessing": c.preprocessing,
                },
                "licence": getattr(svc.info, "license", None),
                **svc.provenance(),
            }
        ]
    }


@api.post("/v1/predict", summary="probabilities by label for one ECG (upload or JSON array)")
async def predict(
    request: Request, lead: str | None = None, per_window: bool = False, measure: bool = False
) -> dict[str, Any]:
    svc = _service(request)
    parsed = await svc.prepared(request, lead, keep_s=MEASURE_KEEP_S if measure else 0.0)
    record, prep = parsed.record, parsed.prep
    per = await svc.batcher.submit(prep.windows, False)
    probs = svc.predictor.record_probabilities(per)
    # the row `ecgfounder predict` writes for this file (one schema: ecgfounder.infer.rows), then
    # what only the service adds; top_findings and quality_flags are the names of service v1
    row = record_row(
        record.record_id,
        probs,
        svc.predictor.scoring,
        flags=prep.flags,
        model=scrub_paths(svc.predictor.model_name),
        preprocessing=svc.predictor.preprocessing,
        n_windows=len(prep.windows),
        duration_s=parsed.duration_s,
    )
    out: dict[str, Any] = {
        **row,
        "fs": record.fs,
        "leads": list(record.leads),
        "top_findings": svc.findings(probs),
        "quality_flags": list(prep.flags),
        "notes": list(prep.record.notes),
        "provenance": svc.provenance(),
    }
    if measure:
        out["measurements"] = await svc.measurements(record)
    if "application/fhir+json" in request.headers.get("accept", ""):
        # the same row as an HL7 FHIR R4 Bundle (docs/interop.md); the subject is the caller's to add
        from ..interop.fhir import record_bundle

        bundle = record_bundle(
            row,
            measurements=out.get("measurements"),
            contract=svc.contract,
            thresholds=dict(zip(svc.predictor.labels, map(float, svc.predictor.thresholds))),
        )
        return JSONResponse(bundle, media_type="application/fhir+json")  # type: ignore[return-value]
    if per_window:
        out["windows"] = [
            {"start_s": s, "probabilities": {lab: float(p) for lab, p in zip(svc.labels, row)}}
            for s, row in zip(prep.starts_s, per)
        ]
    return out


@api.post("/v1/embed", summary="pooled embedding of one ECG (mean over its 10 s windows)")
async def embed(request: Request, lead: str | None = None) -> dict[str, Any]:
    svc = _service(request)
    parsed = await svc.prepared(request, lead, keep_s=0.0)
    record, prep = parsed.record, parsed.prep
    feats = await svc.batcher.submit(prep.windows, True)
    vec = feats.mean(0)
    return {
        "record": record.record_id,
        "n_windows": len(prep.windows),
        "dim": int(vec.size),
        "embedding": [round(float(v), 7) for v in vec],
        "quality_flags": list(prep.flags),
        "provenance": svc.provenance(),
    }


@api.post("/v1/similar", summary="the indexed records nearest to one ECG (serve --index)")
async def similar(
    request: Request, k: int = 10, lead: str | None = None, include_self: bool = False
) -> dict[str, Any]:
    svc = _service(request)
    if svc.index is None:
        raise APIError(
            404, "no_index", "this service was started without an index (ecgfounder serve --index DIR)"
        )
    if not 1 <= k <= 1000:
        raise APIError(422, "bad_k", "k must be between 1 and 1000")
    parsed = await svc.prepared(request, lead, keep_s=0.0)
    record, prep = parsed.record, parsed.prep
    feats = await svc.batcher.submit(prep.windows, True)
    own = None if include_self else svc.index.entry_of(record.record_id)
    table = svc.index.similar(feats.mean(0)[None], k, exclude=[own] if own else None)[0]
    return {
        "record": record.record_id,
        "metric": svc.index.metric,
        "similar": json.loads(table.to_json(orient="records")),
        "provenance": svc.provenance(),
    }


@api.post("/v1/plot", summary="the ECG on standard paper (25 mm/s, 10 mm/mV) as SVG or PNG")
async def plot(
    request: Request,
    format: str = "svg",
    layout: str = "auto",
    findings_top: int = 3,
    lead: str | None = None,
    measure: bool = False,
) -> Response:
    from ..viz import plot_ecg

    svc = _service(request)
    if format not in ("svg", "png"):
        raise APIError(422, "bad_format", "format must be svg or png")
    parsed = await svc.prepared(request, lead, keep_s=max(PLOT_KEEP_S, MEASURE_KEEP_S if measure else 0.0))
    record, prep = parsed.record, parsed.prep
    per = await svc.batcher.submit(prep.windows, False)
    probs = svc.predictor.record_probabilities(per)
    top = [(f["label"], f["probability"]) for f in svc.findings(probs)[: max(0, findings_top)]]
    header = None
    if measure:
        from ..measurement.core import measurements_line

        header = measurements_line(await svc.measurements(record))

    def draw() -> bytes:
        fig, _ = plot_ecg(
            record,
            layout=layout,
            findings=top or None,
            max_rows=PLOT_ROWS,
            measurements=header,
            duration_s=parsed.duration_s,
        )
        return figure_bytes(fig, format)

    try:
        data = await asyncio.get_running_loop().run_in_executor(svc.draw_pool, draw)
    except ECGFounderError as exc:
        raise APIError(422, "cannot_plot", str(exc)) from None
    return Response(data, media_type="image/svg+xml" if format == "svg" else "image/png")


@api.post("/v1/explain", summary="attributions for one label, as JSON and drawn over the trace")
async def explain(
    request: Request,
    label: str | None = None,
    method: str = "integrated-gradients",
    lead: str | None = None,
    steps: int = 32,
) -> dict[str, Any]:
    from ..explain import METHODS
    from ..explain import explain as explain_record
    from ..viz import plot_ecg

    svc = _service(request)
    if svc.net is None:
        raise APIError(
            422,
            "explain_unavailable",
            "explanations need the PyTorch model; this service runs an "
            "exported ONNX model (serve the .safetensors or .pth file to explain)",
        )
    if method not in METHODS:
        raise APIError(422, "bad_method", f"method must be one of {', '.join(METHODS)}")
    if not 2 <= steps <= 256:
        raise APIError(422, "bad_steps", "steps must be in [2, 256]")
    parsed = await svc.prepared(request, lead, keep_s=None)  # the explained window may lie anywhere
    record, prep = parsed.record, parsed.prep
    per = await svc.batcher.submit(prep.windows, False)
    probs = svc.predictor.record_probabilities(per)
    target = label or svc.labels[int(np.argmax(probs))]
    if target not in svc.labels:
        raise APIError(422, "unknown_label", f"{target!r} is not one of the model's labels")

    def run() -> dict[str, Any]:
        with svc.model_lock:
            expl = explain_record(svc.net, prep, target, method=method, steps=steps)  # type: ignore[arg-type]
        if len(expl.leads) == 1 and expl.leads[0] not in record.leads and record.n_leads == 1:
            expl.leads = [record.leads[0]]
        fig, _ = plot_ecg(
            record,
            layout="single" if len(expl.leads) == 1 else "auto",
            lead=expl.leads[0] if len(expl.leads) == 1 else None,
            start_s=expl.start_s,
            attribution=expl,
            findings=f"{expl.label} {expl.score:.2f}",
            findings_label="Explained",
            max_rows=1,
        )
        return {**expl.to_dict(max_points=500), "svg": figure_bytes(fig, "svg").decode()}

    try:
        return await asyncio.get_running_loop().run_in_executor(svc.draw_pool, run)
    except ECGFounderError as exc:
        raise APIError(422, "cannot_explain", str(exc)) from None


@pages.get("/docs", response_class=HTMLResponse, include_in_schema=False)
async def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(
        api_docs_html(request.app.openapi()),
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )


#: The page's policy: its script and style come from this server only, as files (no inline script
#: or style can run, so an injected ``<script>`` would not); drawings are shown as blob: images.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


@pages.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"), headers={"Content-Security-Policy": PAGE_CSP})


@pages.get("/app.js", include_in_schema=False)
@pages.get("/app.css", include_in_schema=False)
async def page_asset(request: Request) -> Response:
    name = request.url.path.lstrip("/")
    return Response(
        _PAGE.with_name(name).read_bytes(),
        media_type=_ASSETS[name],
        headers={"Content-Security-Policy": PAGE_CSP},
    )
