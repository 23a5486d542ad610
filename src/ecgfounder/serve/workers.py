"""Parse workers: uploads are read and prepared in separate processes with hard limits.

A hostile file can make a parser burn CPU or memory. Running it in a thread of the server leaves
the work running after its request gave up (a thread cannot be killed) and lets one request take
the server's memory. Here each upload goes to one of ``size`` worker processes:

* **time**: a job that runs past its deadline (or whose request is cancelled) is ended by killing
  its worker, which is replaced at once; nothing keeps running after the answer;
* **memory**: each worker's address space is capped at what it uses when idle plus
  ``memory_mb`` (``RLIMIT_AS``), so an allocation past the cap fails inside the worker
  (a 413 for the client), never in the server;
* **admission**: at most ``size`` jobs run at once; up to ``max_queue`` more wait for a worker,
  and past that a request is refused at once with 503 and ``Retry-After``.

Workers start from a ``forkserver`` that has the readers and the preprocessing imported (not
torch), so a replacement is ready in milliseconds. A process has one forkserver, and the reading
stream's workers (:func:`~ecgfounder.signal.worker_context`) may have started it with only the
readers preloaded: so a new worker says when its imports are done, and a job's parse deadline
starts then.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import clip
from .errors import APIError, scrub_paths

log = logging.getLogger("ecgfounder.serve")

__all__ = ["ParsePool"]

#: how long a new worker may take to import the readers before its first job
READY_TIMEOUT_S = 60.0


def _address_space_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux
        return 0


def _worker_main(conn: Any, memory_mb: int) -> None:
    """Loop of one worker: receive a ParseJob, send back ("ok", result) or ("error", fields)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import resource

        if memory_mb > 0 and (base := _address_space_bytes()):
            limit = base + memory_mb * (1 << 20)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # pragma: no cover - no rlimits on this platform
        pass
    from ..signal import warm_up
    from .uploads import run_job

    warm_up()  # a no-op where the forkserver did it; its preload is whichever user started it first
    try:
        conn.send(("ready", None))
    except (EOFError, OSError):
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", run_job(job))
        except APIError as exc:
            reply = ("error", (exc.status, exc.code, exc.message, exc.extra))
        except MemoryError:
            reply = (
                "error",
                (
                    413,
                    "too_large_to_parse",
                    f"parsing the upload needed more than the {memory_mb} MB a parse may use",
                    {"limit_mb": memory_mb},
                ),
            )
        except Exception as exc:  # noqa: BLE001 - a reader bug must not kill the worker loop
            reply = (
                "error",
                (
                    422,
                    "unreadable_ecg",
                    scrub_paths(f"cannot read the upload ({type(exc).__name__}: {clip(str(exc), 150)})"),
                    {},
                ),
            )
        try:
            if reply[0] == "ok":
                # The server reserves room for the result in its memory budget before taking it.
                conn.send(("size", int(getattr(reply[1], "nbytes", 0))))
                if conn.recv() != "go":
                    continue
            conn.send(reply)
        except (EOFError, OSError):
            return
        except MemoryError:
            conn.send(("error", (413, "too_large_to_parse", "the parsed upload is too large to return", {})))


def _preload() -> None:
    """Run in the forkserver: import what the workers use, so that each fork starts warm."""
    from ..signal import warm_up
    from . import uploads  # noqa: F401

    warm_up()


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Any
    jobs: int = 0
    ready: bool = False  # has said it finished its imports


class ParsePool:
    """``size`` worker processes running :func:`~ecgfounder.serve.uploads.run_job`."""

    def __init__(self, size: int = 2, *, memory_mb: int = 1024, max_queue: int = 16) -> None:
        self.size = max(1, int(size))
        self.memory_mb = int(memory_mb)
        self.max_queue = max(0, int(max_queue))
        methods = mp.get_all_start_methods()
        self._ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self._waiting = 0
        self.killed = 0
        self.served = 0

    # -- life cycle
    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker_main, args=(child, self.memory_mb), daemon=True, name="ecgfounder-parse"
        )
        proc.start()
        child.close()
        worker = _Worker(proc, parent)
        self._all.add(worker)
        return worker

    async def start(self) -> None:
        if self._idle is not None:
            return
        if self._ctx.get_start_method() == "forkserver":
            self._ctx.set_forkserver_preload([f"{__package__}._preload_hook"])
        self._idle = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for _ in range(self.size):
            self._idle.put_nowait(await loop.run_in_executor(None, self._spawn))

    def _kill(self, worker: _Worker) -> None:
        self._all.discard(worker)
        try:
            worker.process.kill()
            worker.process.join(2)
        except (OSError, ValueError, AssertionError):  # pragma: no cover - already gone
            pass
        worker.conn.close()

    def _replace(self, worker: _Worker) -> None:
        self._kill(worker)
        self.killed += 1
        if self._idle is not None:
            self._idle.put_nowait(self._spawn())

    async def stop(self) -> None:
        for worker in list(self._all):
            self._kill(worker)
        self._idle = None

    @property
    def pids(self) -> list[int]:
        return sorted(w.process.pid for w in self._all)

    @property
    def busy(self) -> int:
        return len(self._all) - (self._idle.qsize() if self._idle is not None else 0)

    # -- running a job
    async def run(self, job: Any, timeout_s: float, reserve: Callable[[int], None] | None = None) -> Any:
        """The result of ``run_job(job)`` in a worker, or the :class:`APIError` it raised.

        Past ``timeout_s`` (or when the calling request is cancelled) the worker is killed and
        replaced; the caller gets a 504. ``reserve(n_bytes)`` is called with the result's size
        before the result is sent over: an :class:`APIError` it raises (the server's memory
        budget is spent) is the caller's answer, and the worker drops the result.
        """
        if self._idle is None:
            await self.start()
        assert self._idle is not None
        deadline = time.monotonic() + timeout_s
        if self._waiting - self._idle.qsize() >= self.max_queue:  # idle workers take waiters first
            raise APIError(
                503,
                "busy",
                f"all {self.size} parse workers are busy and {self._waiting} uploads are "
                "waiting; try again shortly",
                headers={"Retry-After": "2"},
            )
        self._waiting += 1
        try:
            worker = await asyncio.wait_for(self._idle.get(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise APIError(
                503,
                "busy",
                "no parse worker became free in time; try again shortly",
                headers={"Retry-After": "5"},
            ) from None
        finally:
            self._waiting -= 1
        done = False
        try:
            if not worker.process.is_alive():
                raise EOFError
            if not worker.ready:  # a new worker's imports are not the upload's parse time
                started = time.monotonic()
                status, _ = await self._receive(worker, READY_TIMEOUT_S)
                if status != "ready":  # pragma: no cover - the worker's first message is "ready"
                    raise EOFError
                worker.ready = True
                deadline += time.monotonic() - started
            worker.conn.send(job)
            status, payload = await self._receive(worker, max(0.0, deadline - time.monotonic()))
            if status == "size":
                try:
                    if reserve is not None:
                        reserve(int(payload))
                except APIError:
                    worker.conn.send("drop")
                    done = True
                    raise
                worker.conn.send("go")
                status, payload = await self._receive(worker, max(0.0, deadline - time.monotonic()))
            done = True
        except asyncio.TimeoutError:
            raise APIError(
                504,
                "parse_timeout",
                f"reading the upload took longer than {timeout_s:g} s; it was stopped",
                limit_s=timeout_s,
            ) from None
        except (EOFError, OSError, BrokenPipeError):
            raise APIError(
                422,
                "parse_failed",
                "the upload could not be parsed: the parser ended (it ran past "
                f"its {self.memory_mb} MB memory limit or crashed)",
                limit_mb=self.memory_mb,
            ) from None
        finally:
            if done:
                worker.jobs += 1
                self.served += 1
                self._idle.put_nowait(worker)
            else:  # timed out, cancelled or dead: the worker goes, a fresh one takes its place
                self._replace(worker)
        if status == "error":
            code, name, message, extra = payload
            raise APIError(code, name, message, **extra)
        return payload

    async def _receive(self, worker: _Worker, timeout_s: float) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = worker.conn.fileno()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, timeout_s)
        finally:
            loop.remove_reader(fd)
        # The reply may be megabytes: receive it off the event loop.
        return await loop.run_in_executor(None, worker.conn.recv)
