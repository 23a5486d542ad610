"""Running the app under uvicorn with connection limits that slow or idle clients cannot exhaust.

uvicorn closes a keep-alive connection that stays idle after a response, but not a connection that
never completes its request head: 64 sockets that connect and say nothing (or send a header byte
every few seconds) would be held forever, and with ``limit_concurrency`` every other client,
``/healthz`` included, got 503. :class:`HeadTimeoutH11Protocol` closes any connection whose
request line and headers are not complete ``head_timeout_s`` after it opened (or after its last
response); a slow body is bounded by the app's admission (:mod:`.admission`: a body deadline and a
minimum rate, counted before the request takes a slot). The number of requests being processed is
limited in the app (``ServeSettings.max_inflight``, ``max_per_client``), not the number of
connections, so waiting sockets cost a file descriptor each and nothing else.

Client addresses: uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1 by default, which would let any
local client claim to be many (and slip past the per-client limit). Here proxy headers are off
unless ``forwarded_allow_ips`` names the reverse proxies to trust.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeadTimeoutH11Protocol", "uvicorn_config", "run"]


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for receiving each request's head."""

    head_timeout_s: float = 10.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not self._head_cycle:  # a new request's head has arrived
            self._disarm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_cycle = self.cycle
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.head_timeout_s, self._head_expired
        )

    def _disarm_head_deadline(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
        self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        idle = self.cycle is None or self.cycle.response_complete  # no request being answered
        if idle and not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, *, head_timeout_s: float = 10.0, **kwargs: Any) -> Any:
    """A ``uvicorn.Config`` serving ``app`` with the head deadline (other arguments: uvicorn's)."""
    import uvicorn

    protocol = type(
        "HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout_s": float(head_timeout_s)}
    )
    kwargs.setdefault("timeout_keep_alive", 5)
    kwargs.setdefault("h11_max_incomplete_event_size", 16 * 1024)
    kwargs.setdefault("server_header", False)
    kwargs.setdefault("proxy_headers", bool(kwargs.get("forwarded_allow_ips")))
    return uvicorn.Config(app, http=protocol, **kwargs)


def run(
    app: Any,
    *,
    host: str,
    port: int,
    head_timeout_s: float = 10.0,
    sock: socket.socket | None = None,
    **kwargs: Any,
) -> None:
    """Serve ``app`` until interrupted (what ``ecgfounder serve`` runs)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn_config(app, host=host, port=port, head_timeout_s=head_timeout_s, **kwargs)
    )
    server.run(sockets=[sock] if sock is not None else None)
