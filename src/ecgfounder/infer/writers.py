"""Streaming writers for prediction tables and embeddings (rows written as they come)."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

import numpy as np

__all__ = ["TableWriter", "EmbeddingWriter", "table_format"]


def table_format(path: str | None, fmt: str | None) -> str:
    if fmt:
        return fmt
    if path is None:
        return "csv"
    suffix = Path(path).suffix.lower()
    return {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "csv")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


class TableWriter:
    """Rows (dicts with the same keys) to CSV, JSON lines or Parquet; ``path=None`` writes CSV or
    JSON lines to stdout. Parquet is written in row groups of ``group`` rows."""

    def __init__(self, path: str | None, fmt: str, group: int = 1024, *, append: bool = False) -> None:
        if fmt not in ("csv", "jsonl", "parquet"):
            raise ValueError(f"unknown output format {fmt!r} (csv, jsonl, parquet)")
        if fmt == "parquet" and path is None:
            raise ValueError("parquet output needs --output FILE")
        if append and (path is None or fmt == "parquet"):
            raise ValueError("appending needs a CSV or JSON lines file")
        self.path, self.fmt, self.group, self.append = path, fmt, group, append
        self._fh: TextIO | None = None
        self._csv: csv.DictWriter | None = None
        self._rows: list[dict[str, Any]] = []
        self._pq: Any = None
        self.count = 0

    def _open(self) -> TextIO:
        if self._fh is None:
            if self.path is None:
                self._fh = sys.stdout
            else:
                self._fh = open(self.path, "a" if self.append else "w", newline="", encoding="utf-8")
        return self._fh

    def _existing_header(self) -> list[str] | None:
        if not self.append or self.path is None or not Path(self.path).is_file():
            return None
        with open(self.path, newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), None)

    def write(self, row: dict[str, Any]) -> None:
        self.count += 1
        if self.fmt == "csv":
            if self._csv is None:
                header = self._existing_header()
                if header is not None and set(header) != set(row):
                    raise ValueError(f"{self.path}: the columns of the rows to append differ from the file's")
                self._csv = csv.DictWriter(self._open(), fieldnames=header or list(row), lineterminator="\n")
                if header is None:
                    self._csv.writeheader()
            self._csv.writerow({k: ("" if v is None else v) for k, v in row.items()})
        elif self.fmt == "jsonl":
            self._open().write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")
        else:
            self._rows.append(row)
            if len(self._rows) >= self.group:
                self._flush_parquet()

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        table = pa.Table.from_pylist(
            [{k: _clean(v) for k, v in r.items()} for r in self._rows],
            schema=self._pq.schema_arrow if self._pq is not None else None,
        )
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.path, table.schema)
        self._pq.write_table(table)
        self._rows.clear()

    def flush(self) -> None:
        """Hand what was written to the operating system: the rows survive this process being killed
        (``close`` also syncs the file to disk)."""
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush_parquet()
            if self._pq is not None:
                self._pq.close()
        if self._fh is not None and self._fh is not sys.stdout:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        elif self._fh is sys.stdout:
            sys.stdout.flush()


class EmbeddingWriter:
    """Embeddings to ``.npy`` (float32 (N, D)) with the ids in ``<name>.ids.csv`` beside it, or to
    ``.parquet`` (record, window, start_s, embedding). Vectors go to a temporary file as they come,
    so memory stays flat; the ``.npy`` header is written once N is known."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".npy", ".parquet"):
            raise ValueError(f"embedding output must be .npy or .parquet (got {self.path.name})")
        self.fmt = suffix[1:]
        self.count = 0
        self.dim: int | None = None
        if self.fmt == "npy":
            self._tmp = tempfile.NamedTemporaryFile(dir=self.path.parent or ".", prefix=".emb-", delete=False)
            self._ids = open(self.path.with_suffix(".ids.csv"), "w", newline="", encoding="utf-8")
            self._ids_csv = csv.writer(self._ids, lineterminator="\n")
            self._ids_csv.writerow(["row", "record", "window", "start_s"])
        else:
            self._table = TableWriter(str(self.path), "parquet")

    def write(self, record: str, window: int | None, start_s: float | None, vector: np.ndarray) -> None:
        vec = np.asarray(vector, dtype=np.float32)
        if self.dim is None:
            self.dim = vec.size
        if self.fmt == "npy":
            self._tmp.write(vec.tobytes())
            self._ids_csv.writerow(
                [self.count, record, "" if window is None else window, "" if start_s is None else start_s]
            )
        else:
            self._table.write(
                {"record": record, "window": window, "start_s": start_s, "embedding": vec.tolist()}
            )
        self.count += 1

    def close(self) -> None:
        if self.fmt == "parquet":
            self._table.close()
            return
        self._tmp.close()
        self._ids.close()
        shape = (self.count, self.dim or 0)
        with open(self.path, "wb") as out:
            np.lib.format.write_array_header_1_0(
                out,
                {
                    "descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                    "fortran_order": False,
                    "shape": shape,
                },
            )
            with open(self._tmp.name, "rb") as src:
                while block := src.read(1 << 22):
                    out.write(block)
        os.unlink(self._tmp.name)
