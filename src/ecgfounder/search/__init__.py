"""Search by similarity: a vector index of a model's embeddings (``ecgfounder embed``), with the
records' ids and any metadata columns, queried by vector or by ECG file.

``build_index`` (exact, or approximate with FAISS's or usearch's HNSW graphs), ``load_index``,
``VectorIndex.search``/``.similar``; the CLI's ``index`` and ``similar`` commands and the
service's ``/v1/similar`` use them. docs/scale.md has the measurements behind the defaults.
"""

from __future__ import annotations

from .index import BACKENDS, METRICS, VectorIndex, build_index, load_embeddings, load_index, similar_records

__all__ = [
    "VectorIndex",
    "build_index",
    "load_index",
    "load_embeddings",
    "similar_records",
    "BACKENDS",
    "METRICS",
]
