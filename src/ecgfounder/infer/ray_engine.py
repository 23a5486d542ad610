"""The Ray Data engine of archive runs (:mod:`ecgfounder.infer.archive`, on the blocks of
:mod:`ecgfounder.infer.blocks`): ``pip install ecgfounder[scale]``.

One dataset item per block of records. Reading and preparation are Ray tasks on CPUs
(:func:`_prepare_blocks`: the same :func:`~ecgfounder.signal.stream.prepare_item` as every other
path); the model runs in a pool of actors (:class:`_Scorer`: one per GPU where the cluster has
GPUs) that score a block's prepared windows and commit its part file. Only a small status row per
block comes back to the driver, so its memory stays flat. Ray retries a task whose worker died and
restarts a dead actor; a retried block writes the same part under the same name, so nothing is
counted twice. Prepared windows travel between the stages as ``.npy`` bytes (no pickle) with their
metadata as JSON.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import ECGFounderError
from ..io.sources import Source
from .blocks import RunStore, block_rows, commit_block, make_predictor

__all__ = ["run_blocks"]


def _need_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ECGFounderError(
            "--engine ray needs Ray Data: pip install 'ecgfounder[scale]' (or --engine local)"
        ) from None
    return ray


_META = ("key", "starts_s", "duration_s", "flags", "notes", "error", "extras")


def _pack(items: list[Any]) -> tuple[str, bytes]:
    """Prepared items -> (JSON metadata, the windows of all of them as .npy bytes)."""
    meta, arrays = [], []
    for it in items:
        d = {k: getattr(it, k) for k in _META}
        d["n"] = 0 if it.windows is None else len(it.windows)
        meta.append(d)
        if it.windows is not None:
            arrays.append(np.asarray(it.windows, np.float32))
    buf = io.BytesIO()
    np.save(buf, np.concatenate(arrays) if arrays else np.zeros((0, 1, 1), np.float32), allow_pickle=False)
    return json.dumps(meta, default=_json_default), buf.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _unpack(meta_text: str, data: bytes) -> list[Any]:
    from ..signal.stream import PreparedItem

    windows = np.load(io.BytesIO(data), allow_pickle=False)
    items, pos = [], 0
    for d in json.loads(meta_text):
        n = d.pop("n")
        w = windows[pos : pos + n] if n else None
        pos += n
        items.append(PreparedItem(windows=w, **d))
    return items


def _prepare_blocks(batch: dict[str, np.ndarray], prepare: Any) -> dict[str, np.ndarray]:
    """A Ray task: read and prepare the records of each block in the batch."""
    from ..signal.stream import prepare_item

    blocks, metas, datas = [], [], []
    for k, sources in zip(batch["block"], batch["sources"]):
        items = [prepare_item(Source(d["path"], d["index"]), prepare) for d in json.loads(sources)]
        meta, data = _pack(items)
        blocks.append(int(k))
        metas.append(meta)
        datas.append(data)
    return {
        "block": np.array(blocks, np.int64),
        "meta": np.array(metas, dtype=object),
        "windows": np.array(datas, dtype=object),
    }


class _Scorer:
    """A Ray actor: the model, scoring prepared blocks and committing their parts."""

    def __init__(
        self, model: Any, options: Mapping[str, Any], run_dir: str, task: str, per_window: bool, threads: int
    ):
        if threads:  # on CPUs: the actor's share of the cores, not every core for each actor
            import torch

            torch.set_num_threads(threads)
        self.predictor = make_predictor(model, options, workers=0)
        self.store, self.task, self.per_window = RunStore(run_dir), task, per_window

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[int]] = {"block": [], "records": [], "failed": [], "rows": [], "pid": []}
        for k, meta, data in zip(batch["block"], batch["meta"], batch["windows"]):
            rows = block_rows(self.predictor, _unpack(meta, data), self.task, self.per_window)
            done = commit_block(self.store, int(k), rows, self.task)
            for name in ("block", "records", "failed", "rows"):
                out[name].append(done[name])
            out["pid"].append(os.getpid())
        return {name: np.array(v, np.int64) for name, v in out.items()}


def run_blocks(
    model: Any,
    options: Mapping[str, Any],
    blocks: dict[int, list[Source]],
    run_dir: str,
    task: str,
    per_window: bool,
    workers: int | None,
    address: str | None,
) -> tuple[Iterator[dict[str, int]], int]:
    """Score ``blocks`` on Ray; yields each block's status as its part is committed."""
    ray = _need_ray()
    if not blocks:
        return iter(()), 0
    # the driver checks the model and options first (a clear error here, not in a remote actor)
    # and gives the reading tasks the model's preparation
    prepare = make_predictor(model, options, workers=0).prepare
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address:
            kwargs["address"] = address
        ray.init(**kwargs)
        started = True
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    n = int(workers) if workers else (gpus or max(1, cpus // 2))
    # without GPUs the actors share what the reading tasks leave: at least one CPU stays for reading
    actor_cpus = 1.0 if gpus else min(1.0, max(0.1, (cpus - 1) / n))
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    items = [
        {"block": k, "sources": json.dumps([{"path": s.path, "index": s.index} for s in v])}
        for k, v in blocks.items()
    ]
    model_arg = model if isinstance(model, (str, os.PathLike)) else ray.put(model)
    with warnings.catch_warnings():  # retries go in ray_remote_args, which Ray 2.5x calls deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            _prepare_blocks,
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={"prepare": prepare},
            num_cpus=1,
            max_retries=-1,  # a reading task whose worker died runs again
        )
        ds = ds.map_batches(
            _Scorer,
            batch_size=1,
            batch_format="numpy",
            fn_constructor_kwargs={
                "model": str(model_arg) if isinstance(model_arg, os.PathLike) else model_arg,
                "options": dict(options),
                "run_dir": str(run_dir),
                "task": task,
                "per_window": per_window,
                "threads": 0 if gpus else max(1, round(cpus / n)),
            },
            compute=ray.data.ActorPoolStrategy(size=n),
            num_gpus=1 if gpus else 0,
            num_cpus=actor_cpus,
            max_restarts=-1,  # a dead actor is replaced
            max_task_retries=-1,  # and its block scored again
        )

    def go() -> Iterator[dict[str, int]]:
        try:
            for row in ds.iter_rows():
                yield {k: int(row[k]) for k in ("block", "records", "failed", "rows", "pid")}
        finally:
            if started:
                ray.shutdown()

    return go(), n
