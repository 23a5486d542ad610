"""Bootstrap evaluation speed: N records x L labels x B resamples, simulated scores.

.venv/bin/python benchmarks/bench_evaluate.py [--records 20000] [--labels 150] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--labels", type=int, default=150)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    from ecgfounder.eval import evaluate_arrays

    rng = np.random.default_rng(0)
    prevalence = rng.uniform(0.005, 0.3, args.labels)
    y = (rng.random((args.records, args.labels)) < prevalence).astype(np.float32)
    p = np.clip(0.3 * y + rng.random(y.shape) * 0.7, 0, 1).astype(np.float32)
    t = time.perf_counter()
    rep = evaluate_arrays(y, p, [f"L{i}" for i in range(args.labels)], n_boot=args.bootstrap)
    dt = time.perf_counter() - t
    print(
        f"{args.records} records x {args.labels} labels x {args.bootstrap} resamples: {dt:.1f} s "
        f"(macro AUROC {rep.macro['auroc']:.3f} [{rep.macro['auroc_lo']:.3f}, {rep.macro['auroc_hi']:.3f}])"
    )


if __name__ == "__main__":
    main()
