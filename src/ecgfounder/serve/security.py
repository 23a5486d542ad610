"""HTTP-level protections of the service: allowed hosts, security headers, a self-contained API page.

Pure ASGI middleware (no framework internals): each wraps the app and touches only the request's
``Host`` header or the response's headers.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["AllowedHostsMiddleware", "SecurityHeadersMiddleware", "default_allowed_hosts", "api_docs_html"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def default_allowed_hosts(bound: str | None = None) -> list[str]:
    """Loopback names plus the address the server is bound to (unless it is a wildcard)."""
    hosts = list(LOOPBACK_HOSTS)
    if bound and bound not in ("0.0.0.0", "::", "") and bound not in hosts:
        hosts.append(bound)
    return hosts


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8000
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


async def _send_json(
    send: Any, status: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class AllowedHostsMiddleware:
    """Answer 400 to a request whose ``Host`` is not one of ``hosts`` (``"*"`` allows any;
    ``".example.org"`` allows that domain and its subdomains). Defends against DNS rebinding:
    a hostile web page that makes a browser's requests reach this server carries its own host name."""

    def __init__(self, app: Any, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = {_host_name(h) if not h.startswith(".") else h.lower() for h in hosts}
        self.any = "*" in self.hosts

    def allowed(self, host: str) -> bool:
        if self.any:
            return True
        name = _host_name(host)
        return name in self.hosts or any(
            h.startswith(".") and (name.endswith(h) or name == h[1:]) for h in self.hosts
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
            if not self.allowed(host):
                if scope["type"] == "http":
                    await _send_json(
                        send,
                        400,
                        {
                            "error": {
                                "code": "bad_host",
                                "message": "this server does not "
                                "answer for the Host given (see --allowed-host)",
                            }
                        },
                    )
                return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, framing refusal
    (``frame-ancestors 'none'`` in the CSP and ``X-Frame-Options: DENY``) and ``Cache-Control:
    no-store`` (results are personal health data: no shared or browser cache keeps them)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower()
                    not in (
                        b"x-content-type-options",
                        b"x-frame-options",
                        b"referrer-policy",
                        b"cache-control",
                    )
                ]
                csp = next((v for k, v in headers if k.lower() == b"content-security-policy"), None)
                if csp is None:
                    headers.append((b"content-security-policy", b"frame-ancestors 'none'"))
                elif b"frame-ancestors" not in csp:
                    headers = [
                        (k, v + b"; frame-ancestors 'none'" if k.lower() == b"content-security-policy" else v)
                        for k, v in headers
                    ]
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def api_docs_html(spec: dict[str, Any]) -> str:
    """A self-contained HTML page describing the API from its OpenAPI document (no scripts, no CDN)."""
    esc = html.escape
    parts = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{esc(spec['info']['title'])} API</title>",
        "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "code{background:#f3f3f3;padding:0 .25em}h2{margin-top:2rem;font-size:1.1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"
        ".m{font-weight:700;color:#05c}</style>",
        f"<h1>{esc(spec['info']['title'])} {esc(str(spec['info'].get('version', '')))}</h1>",
        f"<p>{esc(spec['info'].get('description', ''))}</p>",
        "<p>Machine-readable: <a href=openapi.json>openapi.json</a>. Uploads: "
        "<code>multipart/form-data</code> "
        "with one or more files in field <code>file</code> (optional fields <code>fs</code>, "
        "<code>leads</code>), or <code>application/json</code> "
        '<code>{"signal": [[...]], "fs": 500, "leads": ["I"], "units": "mV"}</code>. '
        'Errors: <code>{"error": {"code", "message"}}</code>.</p>',
    ]
    for path, methods in sorted(spec.get("paths", {}).items()):
        for method, op in methods.items():
            parts.append(
                f"<h2><span class=m>{esc(method.upper())}</span> <code>{esc(path)}</code></h2>"
                f"<p>{esc(op.get('summary', ''))}</p>"
            )
            params = op.get("parameters", [])
            if params:
                parts.append("<table><tr><th>query parameter</th><th>type</th><th>default</th></tr>")
                for p in params:
                    schema = p.get("schema", {})
                    kind = schema.get("type") or " | ".join(
                        s.get("type", "") for s in schema.get("anyOf", [])
                    )
                    parts.append(
                        f"<tr><td><code>{esc(p['name'])}</code></td><td>{esc(str(kind))}</td>"
                        f"<td>{esc(str(schema.get('default', '')))}</td></tr>"
                    )
                parts.append("</table>")
    return "".join(parts)
