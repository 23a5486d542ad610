"""Archive runs: predict or embed millions of records, exactly once, resumable, on one machine or
on a Ray cluster.

A run lives in a **run directory**::

    RUN/run.json          what the run is: task, model, options, block size, engine history
    RUN/inputs.jsonl      the inputs, one per line, in order (the manifest of what to do)
    RUN/parts/part-000042.parquet
                          the rows of block 42 (records 42*B .. 43*B-1), written whole or not at all

The inputs are cut into fixed blocks of ``block_size`` records. A block's rows are written to a
temporary name and renamed to ``part-NNNNNN.parquet`` when complete, so a part on disk is a whole
block; a block scored twice (a retried task, a worker killed after its rename) writes the same rows
under the same name. Done = the parts present: a run killed at any point (the driver, a worker,
the machine) resumes by scoring the blocks that have no part, and the union of the parts holds
every record once. Bad files are error rows, like everywhere else.

Engines: ``local`` (this process; the :class:`~ecgfounder.infer.Predictor`'s own reading processes)
and ``ray`` (Ray Data: reading and preparation as CPU tasks, the model in a pool of actors, one per
GPU where there are GPUs; streaming, so memory stays bounded whatever the number of records). The
two give the same rows. :func:`collect_rows` reads the parts back in input order;
:func:`finalize` writes them as one CSV, JSON lines or Parquet file (embeddings: Parquet with an
``embedding`` column, the form ``ecgfounder index`` reads).
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ECGFounderError
from ..io.sources import Source
from .blocks import RunStore, block_rows, commit_block, make_predictor, part_name

__all__ = [
    "ArchiveError",
    "ArchiveSummary",
    "ArchiveStatus",
    "run_archive",
    "archive_status",
    "collect_rows",
    "finalize",
]

FORMAT_VERSION = 1
Task = Literal["predict", "embed"]
Engine = Literal["local", "ray"]


class ArchiveError(ECGFounderError):
    """A run directory that cannot be used as asked (another run's, damaged, not finished)."""


@dataclass
class ArchiveStatus:
    """Where a run stands: blocks and records done of those it has."""

    run_dir: str
    task: str
    blocks: int
    blocks_done: int
    records: int
    records_done: int

    @property
    def complete(self) -> bool:
        return self.blocks_done == self.blocks


@dataclass
class ArchiveSummary:
    """What one call of :func:`run_archive` did."""

    run_dir: str
    engine: str
    blocks: int
    blocks_before: int  # blocks already done when this call started (a resumed run)
    blocks_scored: int
    records: int  # records in the blocks this call scored
    failed: int  # of those, records that are error rows
    rows: int
    seconds: float
    workers: int = 1
    output: str | Path | None = None


# ---------------------------------------------------------------------------------- the directory


def _describe(model: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(model, (str, os.PathLike)):
        name = str(model)
    else:
        info = getattr(model, "info", None)
        name = (
            (getattr(info, "name", None) or type(model).__name__)
            if info is not None
            else type(model).__name__
        )
    # what makes the rows: how the run is carried out (progress, callbacks) is left out; objects
    # (a conformal file's sets, calibration windows) by their type, so the text is the same each time
    shown = {k: v for k, v in options.items() if k not in ("progress", "on_error", "workers")}
    return {
        "model": name,
        "options": json.loads(json.dumps(shown, sort_keys=True, default=lambda v: type(v).__name__)),
    }


def _read_run(store: RunStore) -> tuple[dict[str, Any], list[Source]]:
    try:
        meta = json.loads(store.read("run.json").decode("utf-8"))
        lines = store.read("inputs.jsonl").decode("utf-8").splitlines()
        sources = [Source(d["path"], d.get("index")) for d in map(json.loads, lines) if d]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{store}: not a readable run directory ({type(exc).__name__}: {exc})") from None
    if meta.get("format") != FORMAT_VERSION or meta.get("inputs") != len(sources):
        raise ArchiveError(f"{store}: run.json does not match inputs.jsonl (or another format version)")
    return meta, sources


def _open_run(
    store: RunStore, task: str, described: dict[str, Any], block_size: int, per_window: bool, inputs: Any
) -> tuple[dict[str, Any], list[Source]]:
    """The run's description and inputs: read from ``run_dir`` when it holds a run (which must be
    the same task, model and options; the inputs, when given again, the same), else created there."""
    from .runs import collect_inputs

    run_dir = store.url
    if store.exists("run.json"):
        meta, sources = _read_run(store)
        wanted = {"task": task, **described, "per_window": per_window}
        have = {k: meta.get(k) for k in wanted}
        if have != wanted:
            diff = ", ".join(
                f"{k}: {have[k]!r} there, {wanted[k]!r} now" for k in wanted if have[k] != wanted[k]
            )
            raise ArchiveError(
                f"{run_dir} holds another run ({diff}); resume it as it was, or use a new folder"
            )
        if inputs is not None:
            given = [s.key for s in collect_inputs(inputs)]
            if given != [s.key for s in sources]:
                raise ArchiveError(
                    f"{run_dir} was started with other inputs ({len(sources)} there, {len(given)} now); "
                    "resume it without inputs, or use a new folder"
                )
        store.clean()
        return meta, sources
    if inputs is None:
        raise ArchiveError(f"{run_dir} holds no run yet: give the inputs")
    sources = collect_inputs(inputs)
    if block_size < 1:
        raise ValueError("block_size must be >= 1")
    lines = "".join(json.dumps({"path": s.path, "index": s.index}) + "\n" for s in sources)
    store.write("inputs.jsonl", lines.encode("utf-8"))
    meta = {
        "format": FORMAT_VERSION,
        "task": task,
        **described,
        "per_window": per_window,
        "block_size": int(block_size),
        "inputs": len(sources),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "calls": [],
    }
    store.write("run.json", json.dumps(meta, indent=2).encode("utf-8"))
    return meta, sources


def _blocks(n: int, block_size: int) -> int:
    return (n + block_size - 1) // block_size


def archive_status(run_dir: str | os.PathLike[str]) -> ArchiveStatus:
    """Blocks and records done in ``run_dir``."""
    store = RunStore(run_dir)
    meta, sources = _read_run(store)
    b = int(meta["block_size"])
    total = _blocks(len(sources), b)
    done = [k for k in store.parts_done() if k < total]
    records_done = sum(min(b, len(sources) - k * b) for k in done)
    return ArchiveStatus(store.url, meta["task"], total, len(done), len(sources), records_done)


# ---------------------------------------------------------------------------------- the rows of a block


# ---------------------------------------------------------------------------------- running


def run_archive(
    model: Any,
    inputs: Iterable[Any] | None,
    run_dir: str | os.PathLike[str],
    *,
    task: Task = "predict",
    engine: Engine = "local",
    options: Mapping[str, Any] | None = None,
    per_window: bool = False,
    block_size: int = 64,
    workers: int | None = None,
    address: str | None = None,
    progress: bool | None = None,
    output: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    overwrite: bool = False,
) -> ArchiveSummary:
    """Score ``inputs`` with ``model`` into the run directory ``run_dir``; a run directory that
    already holds this run (same task, model, options) is resumed: only blocks without a part are
    scored. ``inputs`` may be ``None`` when resuming (the run's own list is used).

    ``model``: a registered name, a model file, or a loaded model; ``options``: the
    :class:`~ecgfounder.infer.Predictor` options (``lead``, ``stride_s``, ``thresholds``,
    ``batch_size``, ``device``...). ``engine="ray"``: Ray Data on the cluster at ``address``
    (``None``: the one this process is connected to, else a local one started here); ``workers``
    model actors (default: one per GPU, else one per two CPUs of the cluster, at least one). Locally
    ``workers`` are the Predictor's reading processes. ``output``: also write every row to this
    file when the run is complete (:func:`finalize`)."""
    store = RunStore(run_dir)
    options = dict(options or {})
    if task not in ("predict", "embed"):
        raise ValueError(f"task must be predict or embed (got {task!r})")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be local or ray (got {engine!r})")
    if output is not None:
        _check_output(str(output), overwrite)
    meta, sources = _open_run(store, task, _describe(model, options), block_size, per_window, inputs)
    b = int(meta["block_size"])
    total = _blocks(len(sources), b)
    present = store.parts_done()
    todo = [k for k in range(total) if k not in present]
    blocks = {k: sources[k * b : (k + 1) * b] for k in todo}
    t0 = time.perf_counter()
    show = progress if progress is not None else sys.stderr.isatty()
    bar = None
    if show and todo:
        from tqdm import tqdm

        bar = tqdm(
            total=sum(len(v) for v in blocks.values()),
            unit="ECG",
            desc=f"ecgfounder {engine}",
            file=sys.stderr,
        )
    done: list[dict[str, int]] = []
    n_workers = 1
    try:
        if engine == "local":
            done_iter, n_workers = _run_local(model, options, blocks, store, task, per_window, workers)
        else:
            from .ray_engine import run_blocks

            done_iter, n_workers = run_blocks(
                model, options, blocks, store.url, task, per_window, workers, address
            )
        for d in done_iter:
            done.append(d)
            if bar is not None:
                bar.update(d["records"])
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    store.clean(committed_only=True)  # a killed worker's cut write, its block since committed
    _record_call(store, engine, n_workers, len(done), seconds)
    summary = ArchiveSummary(
        run_dir=store.url,
        engine=engine,
        blocks=total,
        blocks_before=total - len(todo),
        blocks_scored=len(done),
        records=sum(d["records"] for d in done),
        failed=sum(d["failed"] for d in done),
        rows=sum(d["rows"] for d in done),
        seconds=seconds,
        workers=n_workers,
    )
    if output is not None:
        summary.output = finalize(store.url, output, fmt=fmt, overwrite=overwrite)
    return summary


def _check_output(out: str | Path, overwrite: bool) -> None:
    from ..io.remote import filesystem, is_url
    from .runs import OutputExistsError

    if is_url(out):
        fs, path = filesystem(str(out))
        exists = fs.exists(path)
    else:
        exists = Path(out).exists()
    if exists and not overwrite:
        raise OutputExistsError(f"{out} exists; choose another output, or --overwrite")


def _record_call(store: RunStore, engine: str, workers: int, blocks: int, seconds: float) -> None:
    meta = json.loads(store.read("run.json").decode("utf-8"))
    meta.setdefault("calls", []).append(
        {
            "engine": engine,
            "workers": workers,
            "blocks": blocks,
            "seconds": round(seconds, 3),
            "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    store.write("run.json", json.dumps(meta, indent=2).encode("utf-8"))


def _run_local(
    model: Any,
    options: Mapping[str, Any],
    blocks: dict[int, list[Source]],
    store: RunStore,
    task: str,
    per_window: bool,
    workers: int | None,
) -> tuple[Iterator[dict[str, int]], int]:
    if not blocks:
        return iter(()), 1
    predictor = make_predictor(model, options, workers)

    def go() -> Iterator[dict[str, int]]:
        for k, block in blocks.items():
            yield commit_block(store, k, block_rows(predictor, block, task, per_window), task)

    return go(), 1


# ---------------------------------------------------------------------------------- reading back


def _tables(run_dir: str) -> Iterator[Any]:
    import pyarrow.parquet as pq

    store = RunStore(run_dir)
    status = archive_status(run_dir)
    if not status.complete:
        raise ArchiveError(
            f"{run_dir}: {status.blocks - status.blocks_done} of {status.blocks} blocks not done yet "
            f"({status.records_done} of {status.records} records); resume the run first"
        )
    for k in range(status.blocks):
        yield pq.read_table(io.BytesIO(store.read(part_name(k))))


def collect_rows(run_dir: str | os.PathLike[str]) -> Any:
    """Every row of a complete run, in input order, as a pandas DataFrame."""
    import pyarrow as pa

    tables = list(_tables(str(run_dir)))
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def finalize(
    run_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a complete run's rows to one file: predictions as CSV, JSON lines or Parquet (by the
    name, or ``fmt``); embeddings as Parquet (record, window, start_s, embedding; failed records left
    out, as ``ecgfounder embed`` writes them). Written under a temporary name and renamed."""
    from ..io.remote import filesystem, is_url
    from .writers import TableWriter, table_format

    run_dir = str(run_dir)
    _check_output(str(output), overwrite)
    if is_url(output):  # written here, then put in the store in one piece
        import tempfile

        with tempfile.TemporaryDirectory(prefix="ecgfounder-out-") as tmpdir:
            local = finalize(run_dir, Path(tmpdir) / str(output).rsplit("/", 1)[-1], fmt=fmt)
            fs, path = filesystem(str(output))
            fs.put_file(str(local), path)
        return output  # type: ignore[return-value]
    out = Path(output)
    meta, _ = _read_run(RunStore(run_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        if meta["task"] == "embed":
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            if out.suffix.lower() != ".parquet":
                raise ArchiveError(f"{out}: embeddings of an archive run are written as .parquet")
            writer = None
            for table in _tables(run_dir):
                table = table.filter(pc.is_null(table["error"])).drop_columns(["error"])
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            if writer is not None:
                writer.close()
            else:
                tmp.touch()
        else:
            kind = table_format(str(out), fmt)
            writer = TableWriter(str(tmp), kind)
            try:
                for table in _tables(run_dir):
                    for row in table.to_pylist():
                        writer.write(row)
            finally:
                writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
