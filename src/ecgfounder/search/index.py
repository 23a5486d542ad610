"""The vector index: embeddings in, nearest records out.

Metrics: ``cosine`` (vectors normalised to unit length, similarity = inner product; higher is
closer) or ``l2`` (Euclidean distance; lower is closer). Backends: ``exact`` (NumPy, blocked
matrix products: the reference every approximate answer is measured against), ``usearch`` and
``faiss`` (HNSW graphs; ``pip install ecgfounder[scale]`` brings FAISS, the default, chosen by
the measurements in docs/scale.md: with graphs of equal degree, from 300,000 vectors on it built
faster, recalled more and answered with a flatter tail than usearch).

An index is a folder: ``index.json`` (backend, metric, dimension, count, the model that made the
embeddings, and the SHA-256 of every file), ``items.parquet`` (record ids, relative to the
deepest folder common to the embedded files, never absolute paths; window, start_s; the metadata
columns), ``vectors.npy`` (float32, read without pickle) and, for an approximate backend, its
graph (``graph.faiss`` / ``graph.usearch``). Files whose digest does not match are refused; where
the graph's library is not installed, the index is searched exactly (same answers, slower).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VectorIndex", "build_index", "load_index", "load_embeddings", "BACKENDS", "METRICS"]

BACKENDS = ("exact", "faiss", "usearch")
METRICS = ("cosine", "l2")
FORMAT = "ecgfounder.index/1"
_GRAPH = {"usearch": "graph.usearch", "faiss": "graph.faiss"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def load_embeddings(path: str | Path) -> tuple[Any, np.ndarray]:
    """``(items, vectors)`` from what ``ecgfounder embed`` writes: ``.npy`` with ``<name>.ids.csv``
    beside it, or ``.parquet`` with an ``embedding`` column. ``items``: a DataFrame with
    ``record`` (and ``window``, ``start_s`` for per-window embeddings)."""
    import pandas as pd

    from ..errors import ECGFounderError

    path = Path(path)
    if not path.is_file():
        raise ECGFounderError(f"{path}: no such embeddings file")
    if path.suffix.lower() == ".npy":
        vectors = np.load(path, allow_pickle=False, mmap_mode="r")
        ids = path.with_suffix(".ids.csv")
        if not ids.is_file():
            raise ECGFounderError(f"{path}: the record ids ({ids.name}) are not beside it")
        items = pd.read_csv(ids, dtype={"record": str})
        items = items.drop(columns=[c for c in ("row",) if c in items.columns])
    elif path.suffix.lower() == ".parquet":
        table = pd.read_parquet(path)
        if "embedding" not in table.columns or "record" not in table.columns:
            raise ECGFounderError(f"{path}: a parquet of embeddings needs 'record' and 'embedding' columns")
        vectors = (
            np.stack([np.asarray(v, np.float32) for v in table["embedding"]])
            if len(table)
            else np.zeros((0, 0))
        )
        items = table.drop(columns=["embedding"])
    else:
        raise ECGFounderError(f"{path}: embeddings are read from .npy (with .ids.csv) or .parquet")
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(items):
        raise ECGFounderError(f"{path}: {len(items)} ids for vectors of shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ECGFounderError(f"{path}: embeddings hold NaN or infinite values")
    for column in ("window", "start_s"):
        if column in items.columns and items[column].isna().all():
            items = items.drop(columns=[column])
    return items.reset_index(drop=True), vectors


def _normalised(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


@dataclass
class VectorIndex:
    """Vectors (unit length for ``cosine``), one item row per vector, and the search structure."""

    vectors: np.ndarray
    items: Any  # pandas DataFrame
    metric: str = "cosine"
    backend: str = "exact"
    model: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    _graph: Any = None

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    # ------------------------------------------------------------------ search

    def _queries(self, queries: Any) -> np.ndarray:
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.shape[1] != self.dim:
            raise ValueError(f"queries of {q.shape[1]} values for an index of {self.dim}-value embeddings")
        return _normalised(q) if self.metric == "cosine" else q

    def search(self, queries: Any, k: int = 10, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)``, each (queries, k), closest first: rows of :attr:`items`; scores are
        cosine similarities (``cosine``) or Euclidean distances (``l2``). ``exact`` searches every
        vector whatever the backend. Rows are -1 where the index holds fewer than k vectors."""
        q = self._queries(queries)
        k = max(1, int(k))
        if exact or self.backend == "exact" or self._graph is None:
            return self._exact(q, k)
        if self.backend == "usearch":
            found = self._graph.search(q, min(k, len(self)))
            rows = np.asarray(found.keys, dtype=np.int64).reshape(len(q), -1)
            dist = np.asarray(found.distances, dtype=np.float64).reshape(len(q), -1)
            scores = 1.0 - dist if self.metric == "cosine" else np.sqrt(np.maximum(dist, 0.0))
        else:
            dist, rows = self._graph.search(q, min(k, len(self)))
            scores = dist if self.metric == "cosine" else np.sqrt(np.maximum(dist, 0.0))
        return _pad(rows, scores, k, self.metric)

    def _exact(self, q: np.ndarray, k: int, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.vectors)
        take = min(k, n)
        best_rows = np.zeros((len(q), 0), np.int64)
        best = np.zeros((len(q), 0))
        sign = -1.0 if self.metric == "cosine" else 1.0  # sort ascending on sign * score
        q_sq = (q.astype(np.float64) ** 2).sum(1, keepdims=True)
        for start in range(0, n, block):
            x = np.asarray(self.vectors[start : start + block], dtype=np.float32)
            if self.metric == "cosine":
                scores = (q @ x.T).astype(np.float64)
            else:  # in float64: |q|^2 - 2 q.x + |x|^2 cancels to the last digits near a match
                x64 = x.astype(np.float64)
                dots = q.astype(np.float64) @ x64.T
                scores = np.sqrt(np.maximum(q_sq - 2 * dots + (x64**2).sum(1)[None], 0.0))
            if scores.shape[1] > take:  # this block's own k best first, then merge
                part = np.argpartition(sign * scores, take - 1, axis=1)[:, :take]
                scores = np.take_along_axis(scores, part, 1)
                rows = part + start
            else:
                rows = np.broadcast_to(np.arange(start, start + len(x)), scores.shape)
            all_scores = np.concatenate([best, scores], 1)
            all_rows = np.concatenate([best_rows, rows], 1)
            order = np.argsort(sign * all_scores, axis=1, kind="stable")[:, :take]
            best = np.take_along_axis(all_scores, order, 1)
            best_rows = np.take_along_axis(all_rows, order, 1)
        return _pad(best_rows, best, k, self.metric)

    def entry_of(self, key: str) -> str | None:
        """The indexed record id that ``key`` (a path or an id) names: the same key, else the
        shortest tail of its path naming one record; None when it is not indexed."""
        from ..records import match_records

        known = [str(r) for r in self.items["record"]]
        pairs = match_records([str(key)], known).pairs if key else []
        return known[pairs[0][1]] if pairs else None

    def similar(self, queries: Any, k: int = 10, *, exclude: Any = None) -> list[Any]:
        """Per query, a DataFrame of its ``k`` nearest items (``rank``, ``score`` or ``distance``,
        then the item columns). ``exclude``: per query, a record id left out of its answer (the
        query record itself)."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        extra = 1 if exclude is not None else 0
        rows, scores = self.search(q, k + extra)
        name = "score" if self.metric == "cosine" else "distance"
        out = []
        for i in range(len(q)):
            keep = [(r, s) for r, s in zip(rows[i], scores[i]) if r >= 0]
            if exclude is not None and exclude[i] is not None:
                keep = [(r, s) for r, s in keep if str(self.items.iloc[r]["record"]) != str(exclude[i])]
            keep = keep[:k]
            table = self.items.iloc[[r for r, _ in keep]].reset_index(drop=True)
            table.insert(0, name, [float(s) for _, s in keep])
            table.insert(0, "rank", list(range(1, len(keep) + 1)))
            out.append(table)
        return out

    # ------------------------------------------------------------------ files

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(
            folder / "vectors.npy", np.ascontiguousarray(self.vectors, dtype=np.float32), allow_pickle=False
        )
        self.items.to_parquet(folder / "items.parquet", index=False)
        files = ["vectors.npy", "items.parquet"]
        if self.backend in _GRAPH and self._graph is not None:
            graph = folder / _GRAPH[self.backend]
            if self.backend == "usearch":
                self._graph.save(str(graph))
            else:
                import faiss

                faiss.write_index(self._graph, str(graph))
            files.append(graph.name)
        meta = {
            "format": FORMAT,
            "backend": self.backend,
            "metric": self.metric,
            "dim": self.dim,
            "count": len(self),
            "model": self.model,
            "created": self.info.get("created")
            or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "build_s": self.info.get("build_s"),
            "sha256": {name: _sha256(folder / name) for name in files},
        }
        (folder / "index.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return folder


def _pad(rows: np.ndarray, scores: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(rows, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if rows.shape[1] < k:
        fill = -np.inf if metric == "cosine" else np.inf
        rows = np.concatenate([rows, np.full((len(rows), k - rows.shape[1]), -1)], 1)
        scores = np.concatenate([scores, np.full((len(scores), k - scores.shape[1]), fill)], 1)
    return rows, scores


def _graph(vectors: np.ndarray, metric: str, backend: str, links: int = 32) -> Any:
    """An HNSW graph: ``links`` neighbours per node on the upper layers, twice that on the base
    layer, in both libraries (usearch's connectivity, FAISS's M); 128 candidates while building,
    64 while searching."""
    if backend == "usearch":
        from usearch.index import Index

        graph = Index(
            ndim=vectors.shape[1],
            metric="ip" if metric == "cosine" else "l2sq",
            dtype="f32",
            connectivity=links,
            expansion_add=128,
            expansion_search=64,
        )
        graph.add(np.arange(len(vectors), dtype=np.uint64), np.ascontiguousarray(vectors), log=False)
        return graph
    import faiss

    kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    graph = faiss.IndexHNSWFlat(vectors.shape[1], links, kind)
    graph.hnsw.efConstruction = 128
    graph.hnsw.efSearch = 64
    graph.add(np.ascontiguousarray(vectors))
    return graph


def build_index(
    embeddings: Any,
    *,
    metric: str = "cosine",
    backend: str = "faiss",
    metadata: Any = None,
    model: str | None = None,
) -> VectorIndex:
    """An index of ``embeddings``: a file ``ecgfounder embed`` wrote, an
    :class:`~ecgfounder.infer.Embeddings`, or ``(items, vectors)``. ``metadata``: a DataFrame or
    CSV/Parquet file with a ``record`` column whose other columns ride along with each item
    (joined on record ids, wherever the files sat: :func:`ecgfounder.records.match_records`).
    ``model``: the model that made the embeddings, so that ``similar`` can embed a query file
    the same way."""
    import pandas as pd

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)} (got {metric!r})")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    if isinstance(embeddings, (str, Path)):
        items, vectors = load_embeddings(embeddings)
    elif isinstance(embeddings, tuple):
        items, vectors = embeddings
        items = pd.DataFrame(items) if not isinstance(items, pd.DataFrame) else items.reset_index(drop=True)
    else:  # Embeddings
        items = embeddings.to_frame().drop(columns=["embedding"])
        vectors = embeddings.vectors
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) == 0:
        raise ValueError("no embeddings to index")
    from ..records import record_ids

    # stable ids, never the paths the files had where they were embedded (relative to the deepest
    # common folder, WFDB suffixes dropped)
    items = items.assign(record=record_ids([str(r) for r in items["record"]]))
    if metadata is not None:
        items = _join_metadata(items, metadata)
    if metric == "cosine":
        vectors = _normalised(vectors)
    start = time.perf_counter()
    graph = None if backend == "exact" else _graph(vectors, metric, backend)
    info = {"build_s": round(time.perf_counter() - start, 3)}
    return VectorIndex(vectors, items, metric, backend, model, info, graph)


def _join_metadata(items: Any, metadata: Any) -> Any:
    import pandas as pd

    from ..records import match_records

    if isinstance(metadata, (str, Path)):
        path = Path(metadata)
        metadata = (
            pd.read_parquet(path)
            if path.suffix.lower() == ".parquet"
            else pd.read_csv(path, dtype={"record": str})
        )
    if "record" not in metadata.columns:
        raise ValueError("the metadata table needs a 'record' column")
    match = match_records(list(items["record"]), list(metadata["record"]))
    extra = metadata.drop(columns=["record"])
    joined = pd.DataFrame(index=range(len(items)), columns=list(extra.columns))
    for i, j in match.pairs:
        joined.iloc[i] = extra.iloc[j].to_numpy()
    return pd.concat([items.reset_index(drop=True), joined.infer_objects()], axis=1)


def load_index(folder: str | Path) -> VectorIndex:
    """An index folder written by :meth:`VectorIndex.save`, every file checked against its digest."""
    import pandas as pd

    from ..errors import ECGFounderError

    folder = Path(folder)
    try:
        meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ECGFounderError(f"{folder}: not an index folder (index.json: {exc})") from None
    if meta.get("format") != FORMAT:
        raise ECGFounderError(f"{folder}: index format {meta.get('format')!r} is not {FORMAT}")
    for name, digest in (meta.get("sha256") or {}).items():
        path = folder / Path(name).name  # never a path out of the folder
        if not path.is_file() or _sha256(path) != digest:
            raise ECGFounderError(f"{folder}: {path.name} is missing or changed since the index was written")
    vectors = np.load(folder / "vectors.npy", allow_pickle=False, mmap_mode="r")
    items = pd.read_parquet(folder / "items.parquet")
    if vectors.shape != (meta["count"], meta["dim"]) or len(items) != meta["count"]:
        raise ECGFounderError(
            f"{folder}: index.json declares {meta['count']} x {meta['dim']}, the files differ"
        )
    backend, metric = meta["backend"], meta["metric"]
    graph = None
    if backend in _GRAPH:
        path = folder / _GRAPH[backend]
        try:
            if backend == "usearch":
                from usearch.index import Index

                graph = Index.restore(str(path), view=False)
            else:
                import faiss

                graph = faiss.read_index(str(path))
        except ImportError:
            graph = None  # searched exactly: same answers, slower
    info = {k: meta.get(k) for k in ("created", "build_s")}
    return VectorIndex(np.asarray(vectors), items, metric, backend, meta.get("model"), info, graph)


def similar_records(
    index: VectorIndex,
    inputs: Any,
    *,
    k: int = 10,
    model: Any = None,
    include_self: bool = False,
    predictor: Any = None,
) -> list[tuple[str, Any, str | None]]:
    """For each ECG in ``inputs`` (files, records...), ``(record, its k nearest items, error)``:
    the ECG embedded by ``model`` (default: the one the index was built from; ``predictor``: an
    existing :class:`~ecgfounder.infer.Predictor` of it), then searched. A record found in the
    index under its own id is left out of its answer unless ``include_self``."""
    from ..errors import ECGFounderError

    if predictor is None:
        model = model or index.model
        if model is None:
            raise ECGFounderError("the index names no model; say which model made its embeddings (--model)")
        from ..infer import Predictor

        predictor = Predictor(model, workers=0, progress=False)
    if predictor.backend.num_features != index.dim:
        raise ECGFounderError(
            f"the model gives {predictor.backend.num_features}-value embeddings, the index holds {index.dim}"
        )
    out: list[tuple[str, Any, str | None]] = []
    for key, _w, _s, vec, err in predictor.iter_embed(inputs):
        if vec is None:
            out.append((key, None, err or "failed"))
            continue
        own = None if include_self else index.entry_of(key)
        table = index.similar(vec[None], k, exclude=[own] if own is not None else None)[0]
        out.append((key, table, None))
    return out
