"""The model behind the service: one thread, and the windows of requests arriving together in one batch."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["Batcher"]


class Batcher:
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
                    out = await loop.run_in_executor(self.executor, self.predictor.forward, stacked, features)
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
                        fut.set_result(out[pos : pos + len(windows)])
                    pos += len(windows)
