"""The blocks of an archive run (:mod:`ecgfounder.infer.archive`), shared by its engines: where a
run directory lives (:class:`RunStore`: a local folder or an ``fsspec`` URL), the rows of a block
and the part file that holds them, written whole."""

from __future__ import annotations

import io
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RunStore", "part_name", "part_bytes", "block_rows", "commit_block", "make_predictor"]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


_PART = re.compile(r"part-(\d{6,})\.parquet")


class RunStore:
    """A run directory on a local disk or in object storage (any ``fsspec`` URL: ``s3://``,
    ``gs://``, ``az://``). Files are written whole: locally to a temporary name then renamed; in
    object storage by one PUT, which a reader sees completely or not at all."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        from ..io.remote import filesystem, is_url

        self.url = str(root)
        self.remote = is_url(self.url)
        self.fs: Any = None
        if self.remote:
            self.fs, path = filesystem(self.url)
            self.root = str(path).rstrip("/")
        else:
            self.root = str(Path(root))

    def __str__(self) -> str:
        return self.url

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self._path(rel))) if self.remote else Path(self._path(rel)).is_file()

    def read(self, rel: str) -> bytes:
        if self.remote:
            return bytes(self.fs.cat_file(self._path(rel)))
        return Path(self._path(rel)).read_bytes()

    def write(self, rel: str, data: bytes) -> None:
        if self.remote:
            self.fs.pipe_file(self._path(rel), data)
        else:
            path = Path(self._path(rel))
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, data)

    def parts_done(self) -> set[int]:
        """The blocks whose part is present (one listing, however many parts)."""
        if self.remote:
            try:
                self.fs.invalidate_cache(self._path("parts"))
                names = [str(n).rsplit("/", 1)[-1] for n in self.fs.ls(self._path("parts"), detail=False)]
            except FileNotFoundError:
                names = []
        else:
            folder = Path(self._path("parts"))
            names = [q.name for q in folder.iterdir()] if folder.is_dir() else []
        return {int(m.group(1)) for m in map(_PART.fullmatch, names) if m}

    def clean(self, committed_only: bool = False) -> None:
        """Leftovers of a local write that was cut (never a part, so never read). With
        ``committed_only``, only those of blocks whose part is there since (a killed worker's,
        scored again by another): what a writer of another shard may be writing is left alone."""
        folder = Path(self._path("parts"))
        if self.remote or not folder.is_dir():
            return
        for tmp in folder.glob(".*.tmp"):
            part = tmp.name[1:].split(".parquet.", 1)[0] + ".parquet"
            if not committed_only or (folder / part).is_file():
                tmp.unlink(missing_ok=True)


def part_name(block: int) -> str:
    return f"parts/part-{block:06d}.parquet"


def part_bytes(rows: list[dict[str, Any]], task: str) -> bytes:
    """A block's rows as Parquet; columns that are empty in this block get the type they have in
    every other block (text; numbers stay numbers because NaN is kept as NaN)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if task == "embed":
        table = pa.table(
            {
                "record": pa.array([r["record"] for r in rows], pa.string()),
                "window": pa.array([r["window"] for r in rows], pa.int64()),
                "start_s": pa.array([r["start_s"] for r in rows], pa.float64()),
                "error": pa.array([r["error"] for r in rows], pa.string()),
                "embedding": pa.array(
                    [
                        None if r["embedding"] is None else np.asarray(r["embedding"], np.float32)
                        for r in rows
                    ],
                    pa.list_(pa.float32()),
                ),
            }
        )
    else:
        table = pa.Table.from_pylist([{k: _plain(v) for k, v in r.items()} for r in rows])
        fields = []
        for f in table.schema:
            if pa.types.is_null(f.type):
                kind = (
                    pa.int64()
                    if f.name in ("n_windows", "window")
                    else (pa.float64() if f.name in ("duration_s", "start_s") else pa.string())
                )
                fields.append(pa.field(f.name, kind))
            else:
                fields.append(f)
        table = table.cast(pa.schema(fields))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def block_rows(predictor: Any, items: Iterable[Any], task: str, per_window: bool) -> list[dict[str, Any]]:
    if task == "predict":
        return list(predictor.iter_predict(items, per_window=per_window))
    return [
        {"record": key, "window": w, "start_s": s, "error": err, "embedding": vec}
        for key, w, s, vec, err in predictor.iter_embed(items, per_window=per_window)
    ]


def _count(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(records, failed records) in a block's rows."""
    records: dict[str, bool] = {}
    for r in rows:
        records[r["record"]] = records.get(r["record"], False) or bool(r.get("error"))
    return len(records), sum(records.values())


def commit_block(store: RunStore, block: int, rows: list[dict[str, Any]], task: str) -> dict[str, int]:
    store.write(part_name(block), part_bytes(rows, task))
    records, failed = _count(rows)
    return {"block": block, "records": records, "failed": failed, "rows": len(rows)}


def make_predictor(model: Any, options: Mapping[str, Any], workers: int | None = 0) -> Any:
    """The Predictor of an archive run (also what each Ray actor builds for itself)."""
    from .predictor import Predictor

    opts = dict(options)
    opts.setdefault("progress", False)
    return Predictor(model, workers=workers, **opts)
