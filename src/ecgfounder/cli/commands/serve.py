"""``ecgfounder serve``: HTTP service + web page: POST /v1/predict, /v1/embed, /v1/plot, /v1/explain."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ...errors import ECGFounderError

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve", help="HTTP service + web page: POST /v1/predict, /v1/embed, /v1/plot, /v1/explain"
    )
    p.add_argument("--model", default="ecgfounder-12lead", help="registered model name or model file")
    p.add_argument(
        "--index", help="an index folder (ecgfounder index) of this model's embeddings: /v1/similar"
    )
    p.add_argument("--host", default="127.0.0.1", help="interface (default loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--api-key", help="require this X-API-Key header (default $ECGFOUNDER_API_KEY; none)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="request body limit (default 20)")
    p.add_argument(
        "--max-duration",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="longest recording accepted (default 600)",
    )
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="per request (default 60)")
    p.add_argument("--max-batch", type=int, default=32, help="windows per model call (default 32)")
    p.add_argument(
        "--max-inflight",
        "--max-connections",
        type=int,
        default=64,
        dest="max_inflight",
        help="requests answered at once, /healthz not counted; more get 503 + Retry-After (default 64)",
    )
    p.add_argument("--workers", type=int, default=2, help="parse worker processes (default 2)")
    p.add_argument(
        "--worker-memory-mb",
        type=int,
        default=1024,
        help="memory one upload's parsing may use; past it the upload is refused (default 1024)",
    )
    p.add_argument(
        "--head-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close connections that have not sent a complete request head by then (default 10)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="the whole request body must arrive within this after its head; then 408 (default 60)",
    )
    p.add_argument(
        "--body-min-rate",
        type=float,
        default=4.0,
        metavar="KB_PER_S",
        help="after 5 s the body must arrive at this average rate or faster; 0: no minimum (default 4)",
    )
    p.add_argument(
        "--max-per-client",
        type=int,
        default=8,
        help="requests in progress from one client address; more get 429 (default 8; 0: no limit)",
    )
    p.add_argument(
        "--memory-budget-mb",
        type=float,
        default=512.0,
        help="request bodies and parsed records the server holds at once; past it 503 (default 512)",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        metavar="ADDRESSES",
        help="reverse proxies (comma-separated addresses) whose X-Forwarded-For names the client; "
        "default: none, the connection's own address counts",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="HOST",
        help="also answer for this Host name (repeatable; '*' for any; default: loopback names and "
        "the --host address)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="allow this browser origin (repeatable; default: CORS off)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default info)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import os

    try:
        from ...serve import ServeSettings, create_app, default_allowed_hosts, run_server
    except ImportError as exc:
        raise ECGFounderError(
            f"the service needs the serve extra: pip install 'ecgfounder[serve]' ({exc})"
        ) from None
    key = args.api_key or os.environ.get("ECGFOUNDER_API_KEY") or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and not key:
        print(
            f"warning: listening on {args.host} without an API key (--api-key or $ECGFOUNDER_API_KEY)",
            file=sys.stderr,
        )
    hosts = default_allowed_hosts(args.host) + list(args.allowed_host or [])
    settings = ServeSettings(
        model=args.model,
        index=args.index,
        max_upload_mb=args.max_upload_mb,
        max_duration_s=args.max_duration,
        timeout_s=args.timeout,
        api_key=key,
        cors_origins=args.cors_origin or [],
        max_batch=args.max_batch,
        allowed_hosts=hosts,
        workers=args.workers,
        worker_memory_mb=args.worker_memory_mb,
        max_inflight=args.max_inflight,
        head_timeout_s=args.head_timeout,
        body_timeout_s=args.body_timeout,
        body_min_rate=args.body_min_rate * 1024,
        max_per_client=args.max_per_client,
        memory_budget_mb=args.memory_budget_mb,
    )
    app = create_app(settings)
    print(
        f"ecgfounder serving {args.model} on http://{args.host}:{args.port}/ (API docs at /docs; "
        f"answering Host {', '.join(hosts)})",
        file=sys.stderr,
    )
    extra = {"forwarded_allow_ips": args.forwarded_allow_ips} if args.forwarded_allow_ips else {}
    run_server(
        app,
        host=args.host,
        port=args.port,
        head_timeout_s=args.head_timeout,
        log_level=args.log_level,
        **extra,
    )
    return 0
