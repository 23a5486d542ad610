"""Unsupervised adaptation to a new site without its labels (docs/adapt.md).

For each model and method:

* **LUDB, lead I, rhythm** (another country, clinical carts; never seen in training): the 200
  records split in two seeded halves; the model is adapted on the unlabelled records of one half
  and scores the other, then the other way round (every record scored once, by a model that never
  saw it); and the transductive figure (adapted on all 200, scoring all 200) apart. Reported: the
  number of 143 sinus-rhythm records called ``normal`` (most probable class), the same among the
  sinus records without a conduction abnormality, extrasystoles or pacing in LUDB's own statements
  (CinC 2017 calls those "other"), and AF-vs-rest AUROC (15 AF records) with a bootstrap CI.
* **CinC 2021 samples** (12-lead carts, lead I, 50 records): the same two-fold protocol, AF AUROC
  where AF is present.
* **CinC 2017 itself**: (a) in domain: adapted on unlabelled records of the development split
  outside the held-out test split (the bundled models' split: seed 0, 20% test), scored on the
  1,194 test records; (b) after adapting to LUDB (the transductive LUDB model), scored on the same
  test records: how much of the source skill the adaptation costs. AF AUROC and challenge F1.

    python benchmarks/bench_adapt.py --models cinc2017-rhythm,cinc2017-rhythm-tiny \\
        --methods none,tent,prior,prior+tent --out adapt.json
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ecgfounder
from ecgfounder.eval.metrics import auroc
from ecgfounder.models.outputs import aggregate
from ecgfounder.train.adapt import AdaptOptions, adapt_model, target_cache

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def ludb_records() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rows = list(csv.DictReader(open(SHARED / "ludb" / "ludb.csv", encoding="utf-8")))
    paths = [str(SHARED / "ludb" / "data" / f"{r['ID']}.hea") for r in rows]
    sinus = np.array(["Sinus rhythm" in r["Rhythms"] for r in rows])
    af = np.array(["Atrial fibrillation" in r["Rhythms"] for r in rows])
    other = np.array(
        [
            bool(
                r["Conduction abnormalities"].strip()
                or r["Extrasystolies"].strip()
                or r["Cardiac pacing"].strip()
            )
            for r in rows
        ]
    )
    return paths, sinus, af, sinus & ~other


def cinc2021_records() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Paths, AF (SNOMED 164889003) and sinus rhythm as the only statement (426783006)."""
    paths, af, only_sinus = [], [], []
    for hea in sorted((SHARED / "cinc2021-samples").glob("*.hea")):
        dx = next((ln for ln in hea.read_text().splitlines() if ln.startswith("# Dx:")), "")
        codes = {c.strip() for c in dx.split(":", 1)[-1].split(",") if c.strip()}
        paths.append(str(hea))
        af.append("164889003" in codes)
        only_sinus.append(codes == {"426783006"})
    return paths, np.array(af), np.array(only_sinus)


def cinc2017_split() -> tuple[list[str], np.ndarray, list[str]]:
    from ecgfounder.train.config import load_config
    from ecgfounder.train.sources import build_manifest

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "train_cinc2017_tiny.yaml")
    cfg.dataset = f"cinc2017:{SHARED / 'cinc2017-dev'}"
    man = build_manifest(cfg)
    test = man.indices("test")
    rest = np.concatenate([man.indices("train"), man.indices("val")])
    return [man.paths[i] for i in test], man.y[test], [man.paths[i] for i in rest]


def score(model: torch.nn.Module, paths: list[str], opts: AdaptOptions) -> np.ndarray:
    """Record probabilities (the model's own aggregation of its windows)."""
    cache, _ = target_cache(paths, model.info.contract, opts)
    model.eval()
    out = np.full((len(paths), len(model.info.labels)), np.nan)
    with torch.inference_mode():
        for r in range(len(paths)):
            if cache.count[r] == 0:
                continue
            w = torch.from_numpy(np.array(cache.record_windows(r), dtype=np.float32))
            p = torch.softmax(model(w).float(), 1).numpy()
            out[r] = aggregate(p, model.info.aggregate or "mean", "multiclass")
    return out


def challenge_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """CinC 2017: mean F1 of normal, AF and other."""
    f1 = []
    for c in range(3):
        tp = np.sum((pred == c) & (y == c))
        f1.append(2 * tp / max(1, np.sum(pred == c) + np.sum(y == c)))
    return float(np.mean(f1))


def boot_auroc(y: np.ndarray, s: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if y[i].any() and not y[i].all():
            vals.append(auroc(y[i], s[i]))
    return float(auroc(y, s)), float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def adapted(model_name: str, method: str, paths: list[str], opts: AdaptOptions) -> torch.nn.Module:
    model = ecgfounder.load_model(model_name)
    if method != "none":
        opts.method = method
        adapt_model(model, paths, opts)
    return model


def two_fold(model_name: str, method: str, paths: list[str], opts: AdaptOptions) -> np.ndarray:
    idx = np.random.default_rng(0).permutation(len(paths))
    halves = [np.sort(idx[: len(idx) // 2]), np.sort(idx[len(idx) // 2 :])]
    probs = np.full((len(paths), 4), np.nan)
    for k in range(2):
        fit, held = halves[k], halves[1 - k]
        model = adapted(model_name, method, [paths[i] for i in fit], opts)
        probs[held] = score(model, [paths[i] for i in held], opts)
    return probs


def ludb_row(probs: np.ndarray, sinus: np.ndarray, af: np.ndarray, clean: np.ndarray) -> dict:
    a, lo, hi = boot_auroc(af, probs[:, 1])
    return {
        "sinus_normal": int((probs[sinus].argmax(1) == 0).sum()),
        "sinus": int(sinus.sum()),
        "clean_sinus_normal": int((probs[clean].argmax(1) == 0).sum()),
        "clean_sinus": int(clean.sum()),
        "af_auroc": round(a, 4),
        "af_auroc_ci": [round(lo, 4), round(hi, 4)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="cinc2017-rhythm,cinc2017-rhythm-tiny")
    ap.add_argument("--methods", default="none,tent,prior,prior+tent")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--tent-params", default="input")
    ap.add_argument("--prior", default="conservative", help="conservative or point")
    ap.add_argument(
        "--cinc-adapt-records", type=int, default=200, help="unlabelled CinC 2017 records adapted on"
    )
    ap.add_argument(
        "--source-records", type=int, default=0, help="CinC 2017 non-test records as --source (0: none)"
    )
    ap.add_argument("--skip-cinc", action="store_true")
    ap.add_argument("--out", default="adapt.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    lpaths, sinus, af, clean = ludb_records()
    c21, c21_af, c21_sinus = cinc2021_records()
    test_paths, test_y, rest = cinc2017_split()
    rng = np.random.default_rng(0)
    cinc_fit = [rest[i] for i in np.sort(rng.choice(len(rest), args.cinc_adapt_records, replace=False))]
    source = [rest[i] for i in np.sort(rng.choice(len(rest), args.source_records, replace=False))] or None
    results = []
    for model_name in args.models.split(","):
        for method in args.methods.split(","):
            t0 = time.time()
            opts = AdaptOptions(
                epochs=args.epochs, tent_params=args.tent_params, source=source, prior=args.prior
            )
            row: dict = {
                "model": model_name,
                "method": method,
                "epochs": args.epochs,
                "tent_params": args.tent_params,
                "prior": args.prior,
            }
            row["ludb"] = ludb_row(two_fold(model_name, method, lpaths, opts), sinus, af, clean)
            full = adapted(model_name, method, lpaths, opts)
            row["ludb_transductive"] = ludb_row(score(full, lpaths, opts), sinus, af, clean)
            p21 = two_fold(model_name, method, c21, opts)
            ok = np.isfinite(p21[:, 0])
            row["cinc2021"] = {
                "records": int(ok.sum()),
                "af": int(c21_af[ok].sum()),
                "af_auroc": round(float(auroc(c21_af[ok], p21[ok, 1])), 4) if c21_af[ok].any() else None,
                "only_sinus": int((c21_sinus & ok).sum()),
                "only_sinus_normal": int((p21[c21_sinus & ok].argmax(1) == 0).sum()),
            }
            if not args.skip_cinc:
                for key, model in (
                    ("cinc2017_after_ludb", full),
                    ("cinc2017_in_domain", adapted(model_name, method, cinc_fit, opts)),
                ):
                    p = score(model, test_paths, opts)
                    row[key] = {
                        "records": len(test_paths),
                        "af_auroc": round(float(auroc(test_y == 1, p[:, 1])), 4),
                        "challenge_f1": round(challenge_f1(test_y, p.argmax(1)), 4),
                    }
            row["seconds"] = round(time.time() - t0, 1)
            results.append(row)
            print(json.dumps(row), flush=True)
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "args": vars(args),
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
