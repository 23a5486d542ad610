"""Train the bundled wave delineator on LUDB: K-fold cross-validation by record, then one model on
all records (the one shipped). The fold models are kept, so ``bench_measure.py`` measures every
LUDB record with the model that never saw it.

    python benchmarks/train_delineator.py [--folds 5] [--epochs 12] [--width 12] [--out runs/delineator]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LUDB = ROOT.parent / "shared" / "data" / "ludb"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--width", type=int, default=12)
    ap.add_argument("--crop", type=int, default=1000, help="training crop in samples at 250 Hz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "runs" / "delineator"))
    ap.add_argument(
        "--final",
        default=str(ROOT / "src" / "ecgfounder" / "models" / "weights" / "ludb-delineator.safetensors"),
        help="where the model trained on all records goes ('' to skip it)",
    )
    args = ap.parse_args()
    if not LUDB.exists():
        print(f"skipped: {LUDB} is not here", file=sys.stderr)
        return 0
    from ecgfounder.measurement.delineate import save_delineator
    from ecgfounder.measurement.training import fold_of, load_ludb, train_delineator

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = load_ludb(LUDB)
    kw = dict(epochs=args.epochs, width=args.width, crop=args.crop)
    settings = {**kw, "folds": args.folds, "seed": args.seed, "records": len(data), "data": "LUDB v1.0.1"}
    for f in range(args.folds):
        path = out / f"fold-{f}.safetensors"
        if path.exists():
            print(f"fold {f}: kept {path}", file=sys.stderr)
            continue
        train = [d for d in data if fold_of(d.record, args.folds, args.seed) != f]
        print(f"fold {f + 1}/{args.folds}: training on {len(train)} records", file=sys.stderr, flush=True)
        model = train_delineator(train, seed=args.seed + f, **kw)
        save_delineator(model, path, {**settings, "fold": f, "trained_on": len(train)})
    if args.final:
        print(f"final model on all {len(data)} records", file=sys.stderr, flush=True)
        model = train_delineator(data, seed=args.seed, **kw)
        save_delineator(model, args.final, {**settings, "fold": None, "trained_on": len(data)})
    (out / "settings.json").write_text(json.dumps({**settings, "seconds": time.time() - t0}, indent=2))
    print(f"done in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
