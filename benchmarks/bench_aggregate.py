"""How a record's windows are combined, measured on the CinC 2017 validation and test splits.

Each model scores every 10 s window of every record once (``predict --per-window``, at the
window stride a record is predicted with); the windows are then combined per record by ``mean``,
``max`` and ``logit`` (:func:`ecgfounder.models.outputs.aggregate`) and scored against the labels:
challenge F1 (mean F1 of normal, AF, other; most probable class), AF AUROC, accuracy and log loss
(of the record probabilities renormalised to sum to 1; ``max`` does not sum to 1). The choice of
a model's ``aggregate`` is made on ``val``; ``test`` shows whether it holds on unseen records.

    .venv/bin/python benchmarks/bench_aggregate.py [--models cinc2017-rhythm,cinc2017-rhythm-tiny]
        [--splits val,test] [--stride 10] [--config examples/train_cinc2017_tiny.yaml]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="cinc2017-rhythm,cinc2017-rhythm-tiny")
    ap.add_argument("--splits", default="val,test")
    ap.add_argument("--stride", type=float, default=None, help="window step in seconds (default: the window)")
    ap.add_argument("--config", default=str(ROOT / "examples" / "train_cinc2017_tiny.yaml"),
                    help="training config whose data set and split (seed, fractions) are used")
    args = ap.parse_args()
    from ecgfounder import Predictor
    from ecgfounder.eval.metrics import task_metrics
    from ecgfounder.models.outputs import AGGREGATES, aggregate
    from ecgfounder.train import build_manifest, load_config

    man = build_manifest(load_config(args.config))
    print("| model | split | records | aggregate | challenge F1 | AF AUROC | accuracy | log loss |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.models.split(","):
        for split in args.splits.split(","):
            idx = man.indices(split)
            paths = [str(man.paths[i]) for i in idx]
            t = time.perf_counter()
            p = Predictor(name, workers=0, progress=False, stride_s=args.stride)
            win = p.predict(paths, per_window=True)
            if (win["error"] != "").any():
                raise SystemExit(f"{(win['error'] != '').sum()} windows failed")
            labels = list(p.labels)
            groups = {r: g[labels].to_numpy(np.float64) for r, g in win.groupby("record", sort=False)}
            y = np.asarray(man.y)[idx]
            for how in AGGREGATES:
                probs = np.stack([aggregate(groups[path], how, "multiclass") for path in paths])
                m = task_metrics("multiclass", y, probs, labels)
                q = probs / probs.sum(1, keepdims=True)
                loss = float(-np.mean(np.log(np.clip(q[np.arange(len(y)), y], 1e-7, 1))))
                print(f"| {name} | {split} | {len(idx)} | {how} | {m['challenge_f1']:.3f} | "
                      f"{m['auroc_AF']:.3f} | {m['accuracy']:.3f} | {loss:.3f} |", flush=True)
            print(f"<!-- {name} {split}: {len(win)} windows scored in {time.perf_counter() - t:.0f} s -->")


if __name__ == "__main__":
    main()
