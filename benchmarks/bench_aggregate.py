"""How a record's windows are combined, measured on the CinC 2017 validation and test splits.

Each model scores every 10 s window of every record once (``predict --per-window``, at the
window stride a record is predicted with); the windows are then combined per record by ``mean``,
``max`` and ``logit`` (:func:`ecgfounder.models.outputs.aggregate`) and scored against the labels:
challenge F1 (mean F1 of normal, AF, other; most probable class), AF AUROC, accuracy and log loss
(of the record probabilities renormalised to sum to 1; ``max`` does not sum to 1). The choice of
a model's ``aggregate`` is made on ``val``; ``test`` shows whether it holds on unseen records.

A model joined to others by ``+`` (``runs/a/last.safetensors+runs/b/last.safetensors``) is an
ensemble: its window probabilities are the members' mean, as a distillation teacher's are. With
``--cache DIR`` each member's window table is kept there, so ensembles of the same members are
scored without running the members again.

    .venv/bin/python benchmarks/bench_aggregate.py [--models cinc2017-rhythm,cinc2017-rhythm-tiny]
        [--splits val,test] [--stride 10] [--config examples/train_cinc2017_tiny.yaml] [--cache DIR]
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
    ap.add_argument(
        "--config",
        default=str(ROOT / "examples" / "train_cinc2017_tiny.yaml"),
        help="training config whose data set and split (seed, fractions) are used",
    )
    ap.add_argument("--cache", default=None, help="folder keeping each member's window table (CSV)")
    args = ap.parse_args()
    import hashlib

    import pandas as pd

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
            tables = []
            for member in name.split("+"):
                stat = Path(member).stat() if Path(member).is_file() else None  # a retrained file: new key
                stamp = f"{stat.st_size}|{stat.st_mtime_ns}" if stat else ""
                key = hashlib.sha256(
                    f"{member}|{stamp}|{split}|{args.stride}|{args.config}".encode()
                ).hexdigest()[:16]
                cached = Path(args.cache) / f"{key}.csv" if args.cache else None
                if cached is not None and cached.is_file():
                    win = pd.read_csv(cached, keep_default_na=False)
                else:
                    p = Predictor(member, workers=0, progress=False, stride_s=args.stride)
                    win = p.predict(paths, per_window=True)
                    if (win["error"] != "").any():
                        raise SystemExit(f"{member}: {(win['error'] != '').sum()} windows failed")
                    if cached is not None:
                        cached.parent.mkdir(parents=True, exist_ok=True)
                        win.to_csv(cached, index=False)
                tables.append(win)
            labels = list(man.labels)  # the manifest's classes, which y indexes
            missing = [lab for lab in labels if any(lab not in w.columns for w in tables)]
            if missing:
                raise SystemExit(f"{name}: no output for label(s) {', '.join(missing)}")
            if any(not w[["record", "window"]].equals(tables[0][["record", "window"]]) for w in tables[1:]):
                raise SystemExit(f"{name}: the members scored different windows")
            mean = np.mean([w[labels].to_numpy(np.float64) for w in tables], axis=0)
            win = tables[0][["record"]].assign(**{lab: mean[:, j] for j, lab in enumerate(labels)})
            groups = {r: g[labels].to_numpy(np.float64) for r, g in win.groupby("record", sort=False)}
            y = np.asarray(man.y)[idx]
            for how in AGGREGATES:
                probs = np.stack([aggregate(groups[path], how, "multiclass") for path in paths])
                m = task_metrics("multiclass", y, probs, labels)
                q = probs / probs.sum(1, keepdims=True)
                loss = float(-np.mean(np.log(np.clip(q[np.arange(len(y)), y], 1e-7, 1))))
                print(
                    f"| {name} | {split} | {len(idx)} | {how} | {m['challenge_f1']:.3f} | "
                    f"{m['auroc_AF']:.3f} | {m['accuracy']:.3f} | {loss:.3f} |",
                    flush=True,
                )
            print(f"<!-- {name} {split}: {len(win)} windows scored in {time.perf_counter() - t:.0f} s -->")


if __name__ == "__main__":
    main()
