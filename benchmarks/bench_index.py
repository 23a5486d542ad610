"""Similarity search: retrieval quality on CinC 2017 and the cost of the index backends.

1. Quality: every CinC 2017 recording embedded by a bundled model (cached in --cache); for each
   record of the test split of examples/train_cinc2017_tiny.yaml (never used to train the bundled
   models), precision@10 of the same rhythm class among its 10 nearest records (itself left out),
   over the whole set and over the test split alone, for cosine and L2, against the random
   baseline (the chance that a random other record shares the class).
2. Backends: usearch and FAISS HNSW against exact search on N synthetic vectors (a Gaussian
   mixture shaped like the embeddings, 64 or 1024 values): build time, recall@10 of exact search,
   query latency p50/p99 (one query at a time), memory of the index.

    .venv/bin/python benchmarks/bench_index.py --model cinc2017-rhythm --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CINC = ROOT.parent / "shared" / "data" / "cinc2017-dev"
CLASSES = {"N": "normal", "A": "AF", "O": "other", "~": "noisy"}


def embeddings(model: str, cache: Path) -> tuple[list[str], np.ndarray]:
    from ecgfounder import Predictor

    out = cache / f"cinc2017-{model}.npz"
    if out.is_file():
        z = np.load(out, allow_pickle=False)
        return [str(r) for r in z["records"]], z["vectors"]
    files = sorted(glob.glob(str(CINC / "*.hea")))
    start = time.perf_counter()
    emb = Predictor(model, workers=0, progress=True).embed(files)
    print(f"embedded {len(files)} records in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    records = [Path(r).stem for r in emb.records]
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(out, records=np.array(records), vectors=emb.vectors)
    return records, emb.vectors


def test_split() -> set[str]:
    from ecgfounder.train import build_manifest, load_config

    cfg = load_config(ROOT / "examples" / "train_cinc2017_tiny.yaml", {"dataset": f"cinc2017:{CINC}"})
    man = build_manifest(cfg)
    return {Path(man.paths[i]).stem for i in man.indices("test")}


def quality(records: list[str], vectors: np.ndarray, k: int = 10) -> list[dict]:
    from ecgfounder.search import build_index

    ref = dict(line.strip().split(",") for line in (CINC / "REFERENCE.csv").read_text().splitlines())
    labels = np.array([CLASSES[ref[r]] for r in records])
    held = test_split()
    rows = []
    for metric in ("cosine", "l2"):
        for scope, mask in (
            ("all records", np.ones(len(records), bool)),
            ("test split", np.isin(records, list(held))),
        ):
            q = np.nonzero(mask)[0]
            sub = build_index(
                ({"record": [records[i] for i in q]}, vectors[q]), metric=metric, backend="exact"
            )
            found, _ = sub.search(vectors[q], k + 1)
            lab = labels[q]
            neighbours = found[:, 1:]  # the nearest is the record itself
            precision = (lab[neighbours] == lab[:, None]).mean(1)
            counts = {c: int((lab == c).sum()) for c in CLASSES.values()}
            n = len(lab)
            chance = sum(m * (m - 1) for m in counts.values()) / (n * (n - 1))
            per_class = {
                c: round(float(precision[lab == c].mean()), 3) for c in CLASSES.values() if counts[c]
            }
            rows.append(
                dict(
                    metric=metric,
                    scope=scope,
                    records=n,
                    precision_at_10=round(float(precision.mean()), 3),
                    random=round(chance, 3),
                    per_class=per_class,
                )
            )
    return rows


def backends(n: int, dim: int, queries: int = 500, seed: int = 0) -> list[dict]:
    import tracemalloc

    from ecgfounder.search import build_index

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, dim)).astype(np.float32)
    x = centres[rng.integers(0, 64, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    q = x[rng.choice(n, queries, replace=False)] + 0.1 * rng.normal(size=(queries, dim)).astype(np.float32)
    exact = build_index(({"record": np.arange(n).astype(str)}, x), backend="exact")
    start = time.perf_counter()
    truth, _ = exact.search(q, 10)
    exact_s = (time.perf_counter() - start) / queries
    rows = [
        dict(
            backend="exact",
            n=n,
            dim=dim,
            build_s=0.0,
            recall_at_10=1.0,
            p50_ms=round(exact_s * 1000, 2),
            p99_ms=None,
            note="batched, per query",
        )
    ]
    for backend in ("usearch", "faiss"):
        tracemalloc.start()
        index = build_index(({"record": np.arange(n).astype(str)}, x), backend=backend)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        lat = []
        found = np.zeros((queries, 10), np.int64)
        for i in range(queries):
            t = time.perf_counter()
            found[i] = index.search(q[i : i + 1], 10)[0][0]
            lat.append(time.perf_counter() - t)
        recall = np.mean([len(set(found[i]) & set(truth[i])) / 10 for i in range(queries)])
        rows.append(
            dict(
                backend=backend,
                n=n,
                dim=dim,
                build_s=index.info["build_s"],
                recall_at_10=round(float(recall), 4),
                p50_ms=round(float(np.percentile(lat, 50)) * 1000, 3),
                p99_ms=round(float(np.percentile(lat, 99)) * 1000, 3),
                python_peak_mb=round(peak / 2**20, 1),
            )
        )
        del index
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cinc2017-rhythm")
    ap.add_argument("--cache", default=str(ROOT / "benchmarks" / ".cache"))
    ap.add_argument("--sizes", default="100000", help="synthetic index sizes, comma-separated")
    ap.add_argument(
        "--dim", type=int, default=0, help="vector size for the synthetic runs (default: the model's)"
    )
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    out: dict = {}
    dim = args.dim
    if not args.skip_quality:
        records, vectors = embeddings(args.model, Path(args.cache))
        dim = dim or vectors.shape[1]
        out["quality"] = quality(records, vectors)
        for row in out["quality"]:
            print(json.dumps(row))
    dim = dim or 64
    out["backends"] = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        for row in backends(n, dim):
            out["backends"].append(row)
            print(json.dumps(row))


if __name__ == "__main__":
    main()
