"""``ecgfounder index``: a vector index of embeddings (``ecgfounder embed``'s output) for search by
similarity."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("index", help="index embeddings for search by similarity (docs/scale.md)")
    p.add_argument("embeddings", help="embed's output: FILE.npy (with FILE.ids.csv) or FILE.parquet")
    p.add_argument("--out", required=True, help="the index folder to write")
    p.add_argument(
        "--metric",
        choices=["cosine", "l2"],
        default="cosine",
        help="cosine similarity (default) or Euclidean distance",
    )
    p.add_argument(
        "--backend",
        choices=["faiss", "usearch", "exact"],
        default="faiss",
        help="faiss (default) or usearch: approximate HNSW graphs; exact: every vector compared",
    )
    p.add_argument("--metadata", help="CSV/Parquet with a 'record' column; its other columns ride along")
    p.add_argument("--model", help="the model that made the embeddings (similar then embeds queries with it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index folder")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...errors import ECGFounderError
    from ...search import build_index

    out = Path(args.out)
    if (out / "index.json").exists() and not args.overwrite:
        raise ECGFounderError(f"{out} holds an index; choose another folder or --overwrite")
    try:
        index = build_index(
            args.embeddings,
            metric=args.metric,
            backend=args.backend,
            metadata=args.metadata,
            model=args.model,
        )
    except (ValueError, ImportError) as exc:
        raise ECGFounderError(str(exc)) from None
    index.save(out)
    print(
        f"indexed {len(index):,} embeddings of {index.dim} values ({index.backend}, {index.metric}) "
        f"in {index.info['build_s']:.2f} s -> {out}",
        file=sys.stderr,
    )
    return 0
