"""Admission of requests: the API key, the body's size, rate and deadline, the memory budget, slots
per client and in all, and the answer's deadline. Pure ASGI middleware, the innermost before routing.

A request passes these steps in order; each refusal is a JSON error naming its limit:

1. **API key** (when set; not for ``/``, ``/healthz`` and the docs): 401.
2. **Content-Length**: a number, within ``max_upload_mb``: 400/413.
3. **Slots per client address** (``max_per_client``, not ``/healthz``): requests from one address
   being received or answered at once; past it 429 with ``Retry-After``.
4. **The body**, received whole *before* the request takes a slot: it must arrive within
   ``body_timeout_s`` of the request head, and, after the first ``body_grace_s``, at no less than
   ``body_min_rate`` bytes per second on average (nginx's ``client_body_timeout`` and Apache's
   ``mod_reqtimeout`` ``body=...,MinRate=...``); else 408 and the connection closes. Its bytes
   are reserved in the server's **memory budget** as they arrive (a declared length up front);
   a spent budget answers 503 with ``Retry-After``.
5. **Slots in all** (``max_inflight``, not ``/healthz``): requests being answered; past it 503.
6. **The answer's deadline** (``timeout_s``): 504.

Before this order a client that sent a head and then one body byte every 2 s held one of the
``max_inflight`` slots for the whole request timeout; 64 such sockets refused every other client.
Now such a socket holds no slot, is closed within ``body_grace_s`` plus a little, and one address
holds at most ``max_per_client`` of them.

Everything a request reserved in the budget (its body; the records its parse returned, see
:class:`MemoryBudget`) is given back when its answer ends, and the server returns freed heap
memory to the system when it falls idle (:func:`~.memory.release_free_memory`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .errors import APIError, scrub_paths

__all__ = ["Admission", "AdmissionState", "MemoryBudget", "Lease", "lease_of", "LEASE_KEY"]

#: Where the request's :class:`Lease` sits in the ASGI scope.
LEASE_KEY = "ecgfounder.lease"


class MemoryBudget:
    """Bytes of request bodies and parsed records the server holds at once.

    One per app, used from the event loop only. A request reserves through its :class:`Lease`;
    a reservation past the budget raises :class:`APIError` 503 with ``Retry-After`` (413 when the
    one request alone is larger than the whole budget).
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit = int(limit_bytes)
        self.used = 0
        self.peak = 0

    @property
    def limit_mb(self) -> float:
        return self.limit / (1 << 20)

    def lease(self) -> Lease:
        return Lease(self)


class Lease:
    """One request's share of the :class:`MemoryBudget`, given back by :meth:`release`."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.held = 0

    def reserve(self, n_bytes: int, what: str) -> None:
        """Hold ``n_bytes`` more, or raise 503 (budget in use) / 413 (larger than the budget)."""
        n = self.check(n_bytes, what)
        b = self.budget
        b.used += n
        b.peak = max(b.peak, b.used)
        self.held += n

    def check(self, n_bytes: int, what: str) -> int:
        """Raise as :meth:`reserve` would, without holding anything."""
        b = self.budget
        n = max(0, int(n_bytes))
        if self.held + n > b.limit:
            raise APIError(
                413,
                "too_large_for_memory_budget",
                f"{what} needs {(self.held + n) / (1 << 20):.0f} MB "
                f"of server memory; the server's budget for requests in flight is {b.limit_mb:g} MB",
                limit_mb=b.limit_mb,
            )
        if b.used + n > b.limit:
            raise APIError(
                503,
                "busy_memory",
                f"the server's memory budget for uploads and records in flight "
                f"({b.limit_mb:g} MB) is in use; try again shortly",
                headers={"Retry-After": "2"},
                limit_mb=b.limit_mb,
            )
        return n

    def release(self) -> int:
        n, self.held = self.held, 0
        self.budget.used -= n
        return n


def lease_of(scope: Any) -> Lease | None:
    """The :class:`Lease` of the request whose ASGI scope (or Starlette request) this is."""
    scope = getattr(scope, "scope", scope)
    return scope.get(LEASE_KEY)


def _json(
    status: int,
    code: str,
    message: str,
    headers: Iterable[tuple[str, str]] = (),
    close: bool = False,
    **extra: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    body = json.dumps({"error": {"code": code, "message": scrub_paths(message), **extra}}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if close:  # the body was not read: the connection cannot carry another request
        hdrs.append((b"connection", b"close"))
    return (
        {"type": "http.response.start", "status": status, "headers": hdrs},
        {"type": "http.response.body", "body": body},
    )


class AdmissionState:
    """What the admission counts (one per app, in ``app.state.admission``; read by ``/healthz``)."""

    def __init__(self) -> None:
        self.inflight = 0  # requests being answered (slots)
        self.receiving = 0  # bodies being received
        self.per_client: dict[str, int] = {}  # requests in progress per client address
        self.refused: dict[str, int] = {}  # refusals by error code


class Admission:
    """The admission steps above, around ``app``. ``settings``: a
    :class:`~.settings.ServeSettings`; ``budget``: the app's :class:`MemoryBudget`; ``state``: its
    counters; ``on_idle``: called when the last request in progress ends (giving memory back)."""

    def __init__(
        self,
        app: Any,
        settings: Any,
        budget: MemoryBudget,
        state: AdmissionState | None = None,
        *,
        open_paths: Iterable[str] = ("/", "/app.js", "/app.css", "/healthz", "/docs", "/openapi.json"),
        uncounted: Iterable[str] = ("/healthz",),
        on_idle: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        self.app = app
        self.s = settings
        self.budget = budget
        self.state = state or AdmissionState()
        self.open_paths = set(open_paths)
        self.uncounted = set(uncounted)
        self.on_idle = on_idle
        self.limit_bytes = int(settings.max_upload_mb * 1024 * 1024)

    # ------------------------------------------------------------------ helpers

    async def _refuse(
        self,
        send: Any,
        status: int,
        code: str,
        message: str,
        *,
        close: bool = False,
        headers: Iterable[tuple[str, str]] = (),
        **extra: Any,
    ) -> None:
        self.state.refused[code] = self.state.refused.get(code, 0) + 1
        start, body = _json(status, code, message, headers, close, **extra)
        await send(start)
        await send(body)

    async def _receive_body(self, receive: Any, lease: Lease, declared: int | None) -> list[bytes] | None:
        """The whole body as chunks, within the deadlines and the budget; ``None``: the client left."""
        s = self.s
        loop = asyncio.get_running_loop()
        start = loop.time()
        hard = start + s.body_timeout_s
        if declared is not None:  # refused now if it cannot fit now; reserved as it arrives (a slow
            lease.check(declared, f"a request body of {declared:,} bytes")  # sender holds only what it sent)
        chunks: list[bytes] = []
        size = 0
        while True:
            # The next bytes must come before the hard deadline and before the average rate since
            # the grace period ends falls below the minimum.
            by_rate = start + s.body_grace_s + size / s.body_min_rate if s.body_min_rate > 0 else hard
            wait = min(hard, by_rate) - loop.time()
            if wait <= 0:
                raise _BodyTooSlow(size, loop.time() - start)
            try:
                message = await asyncio.wait_for(receive(), wait)
            except asyncio.TimeoutError:
                raise _BodyTooSlow(size, loop.time() - start) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.limit_bytes:
                    raise APIError(
                        413,
                        "upload_too_large",
                        f"request body exceeds the {s.max_upload_mb:g} MB limit",
                        limit_mb=s.max_upload_mb,
                    )
                lease.reserve(len(chunk), "the request body")
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks

    # ------------------------------------------------------------------ the steps

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        s, st = self.s, self.state
        path = scope.get("path", "")
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        raw_length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        unread = chunked or (raw_length is not None and raw_length.strip(b"0") != b"")
        if s.api_key and path not in self.open_paths and scope.get("method") != "OPTIONS":
            given = headers.get(b"x-api-key", b"")
            if not secrets.compare_digest(given, s.api_key.encode()):
                await self._refuse(
                    send, 401, "unauthorised", "missing or wrong X-API-Key header", close=unread
                )
                return
        declared: int | None = None
        if raw_length is not None:
            text = raw_length.decode("latin-1")
            if not (text.isascii() and text.isdigit() and len(text) <= 18):
                await self._refuse(
                    send, 400, "bad_content_length", "Content-Length is not a number", close=True
                )
                return
            declared = int(text)
            if declared > self.limit_bytes:
                await self._refuse(
                    send,
                    413,
                    "upload_too_large",
                    f"request body of {declared:,} bytes exceeds the {s.max_upload_mb:g} MB limit",
                    close=True,
                    limit_mb=s.max_upload_mb,
                )
                return
        counted = path not in self.uncounted
        client = (scope.get("client") or ("unknown", 0))[0]
        if counted and s.max_per_client > 0 and st.per_client.get(client, 0) >= s.max_per_client:
            await self._refuse(
                send,
                429,
                "too_many_requests",
                f"this client address has {s.max_per_client} "
                "requests in progress (the limit per address); try again shortly",
                close=True,
                headers=[("Retry-After", "2")],
                limit=s.max_per_client,
            )
            return
        lease = self.budget.lease()
        if counted:
            st.per_client[client] = st.per_client.get(client, 0) + 1
        slot = False
        try:
            body_receive = receive
            if (declared or 0) > 0 or chunked:
                st.receiving += 1
                try:
                    got = await self._receive_body(receive, lease, declared)
                except _BodyTooSlow as exc:
                    rate = (
                        f" and, after {s.body_grace_s:g} s, arrive at {s.body_min_rate / 1024:g} KB/s or more"
                        if s.body_min_rate > 0
                        else ""
                    )
                    await self._refuse(
                        send,
                        408,
                        "body_timeout",
                        f"the request body did not arrive in time: "
                        f"{exc.size:,} bytes in {exc.seconds:.1f} s (the body must be complete within "
                        f"{s.body_timeout_s:g} s of the request head{rate})",
                        close=True,
                        limit_s=s.body_timeout_s,
                        min_rate_kb_s=s.body_min_rate / 1024,
                    )
                    return
                except APIError as exc:
                    await self._refuse(
                        send,
                        exc.status,
                        exc.code,
                        exc.message,
                        close=True,
                        headers=exc.headers.items(),
                        **exc.extra,
                    )
                    return
                finally:
                    st.receiving -= 1
                if got is None:
                    return  # the client went away
                body_receive = _replay(got, receive)
            if counted and st.inflight >= s.max_inflight:
                await self._refuse(
                    send,
                    503,
                    "busy",
                    f"the server is answering {st.inflight} requests; try again shortly",
                    headers=[("Retry-After", "2")],
                )
                return
            slot = counted
            st.inflight += slot
            scope = {**scope, LEASE_KEY: lease}
            await self._answer(scope, body_receive, send)
        finally:
            held = lease.release()
            if counted:
                left = st.per_client[client] - 1
                if left:
                    st.per_client[client] = left
                else:
                    del st.per_client[client]
            st.inflight -= slot
            if (slot or held) and st.inflight == 0 and st.receiving == 0 and self.on_idle is not None:
                result = self.on_idle()
                if asyncio.iscoroutine(result):
                    await result

    async def _answer(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the app under the answer's deadline (504 if nothing was sent by then)."""
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracked), self.s.timeout_s)
        except asyncio.TimeoutError:
            if not started:
                await self._refuse(
                    send,
                    504,
                    "timeout",
                    f"request took longer than the {self.s.timeout_s:g} s limit",
                    limit_s=self.s.timeout_s,
                )


class _BodyTooSlow(Exception):
    def __init__(self, size: int, seconds: float) -> None:
        super().__init__(size, seconds)
        self.size, self.seconds = size, seconds


def _replay(chunks: list[bytes], receive: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A ``receive`` that hands the app the body already received (each chunk once, no copy), then
    defers to the connection's own (which reports the client leaving)."""
    pending = deque(chunks or [b""])

    async def replay() -> dict[str, Any]:
        if pending:
            chunk = pending.popleft()
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return await receive()

    return replay
