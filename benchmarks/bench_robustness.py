"""Robustness: what graded real-device noise does to the model, and whether the quality flags fire.

    python benchmarks/bench_robustness.py [--records 400] [--model cinc2017-rhythm] [--aggregate mean] \
        [--out DIR]

Part 1 (model): the bundled rhythm model on held-out CinC 2017 test records (the first --records
of the split, all four classes), each corrupted at every severity of every corruption of
:mod:`ecgfounder.eval.robustness`; AF AUROC and the challenge F1 (mean F1 of normal, AF, other)
per corruption and severity, beside the clean score.

Part 2 (flags): ``check_quality`` on clean and corrupted real records: the CinC 2017 test split
(single lead, 300 Hz; the records labelled noisy left out of "clean"), LUDB (200 12-lead records,
500 Hz) and the CinC 2021 samples (50 12-lead records, 500 Hz). A record counts as flagged when any
quality flag fires (or it is refused as unusable); the table gives the rate at each severity and
the rate of the flag meant for that corruption.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))

#: the flag meant to catch each corruption (prefix of the flag name)
EXPECTED = {
    "baseline_wander": ("baseline_wander",),
    "powerline_50hz": ("powerline_50hz",),
    "powerline_60hz": ("powerline_60hz",),
    "white_noise": ("noise",),
    "emg": ("noise",),
    "motion": ("motion_artifact",),
    "lead_off": ("flat", "flat_segment"),
    "gain": ("flat", "amplitude_implausible"),
    "inverted": (),
    "limb_swap_LA/RA": ("limb_reversal:LA/RA",),
    "limb_swap_RA/LL": ("limb_reversal:RA/LL",),
    "limb_swap_LA/LL": ("limb_reversal:LA/LL",),
}
INFORMATIONAL = ("short:", "nan_interpolated:")


def cinc_records(split: str, limit: int | None) -> list[tuple[str, str]]:
    from bench_monitor import heldout

    pools = heldout(split)
    items = sorted((name, cls) for cls, names in pools.items() for name in names)
    return items[:limit] if limit else items


def quality_outcome(record) -> tuple[bool, list[str], bool]:
    """(flagged, flags, refused) of ``check_quality`` on a record."""
    from ecgfounder.errors import ECGInputError
    from ecgfounder.signal import check_quality

    try:
        flags = [f for f in check_quality(record).flags if not f.startswith(INFORMATIONAL)]
    except ECGInputError:
        return True, ["refused"], True
    return bool(flags), flags, False


def flag_table(sets: dict[str, list], seed: int) -> list[dict]:
    from ecgfounder.eval.robustness import CORRUPTIONS, SEVERITIES, corrupt

    rows = []
    for set_name, records in sets.items():
        twelve = records[0].n_leads >= 12
        clean = [quality_outcome(r) for r in records]
        rows.append(
            {
                "set": set_name,
                "corruption": "none",
                "severity": "",
                "records": len(records),
                "flagged": float(np.mean([c[0] for c in clean])),
                "expected_flag": None,
            }
        )
        for name in CORRUPTIONS:
            if name.startswith("limb_swap") and not twelve:
                continue
            for sev in SEVERITIES[name]:
                rng = np.random.default_rng(seed)
                outcomes = [quality_outcome(corrupt(r, name, sev, rng)) for r in records]
                exp = EXPECTED[name]
                hit = [
                    any(f == "refused" or f.startswith(exp) for f in o[1]) if exp else False for o in outcomes
                ]
                rows.append(
                    {
                        "set": set_name,
                        "corruption": name,
                        "severity": sev,
                        "records": len(records),
                        "flagged": float(np.mean([o[0] for o in outcomes])),
                        "expected_flag": float(np.mean(hit)) if exp else None,
                    }
                )
            print(f"  {set_name}: {name} done", file=sys.stderr)
    return rows


def model_table(
    records: list, classes: list[str], model: str, seed: int, aggregate: str | None = None
) -> list[dict]:
    from ecgfounder import Predictor
    from ecgfounder.eval.metrics import auroc, f1_scores
    from ecgfounder.eval.robustness import CORRUPTIONS, SEVERITIES, corrupt

    pred = Predictor(model, progress=False, aggregate=aggregate)
    labels = list(pred.labels)
    y = np.array([labels.index(c) for c in classes])

    def score(recs: list) -> dict:
        df = pred.predict(recs)
        ok = df["error"].fillna("").astype(str) == ""
        p = df.loc[ok, labels].to_numpy(float)
        yy = y[ok.to_numpy()]
        f1 = f1_scores(yy, p.argmax(1), len(labels))
        return {
            "af_auroc": float(auroc(yy == labels.index("AF"), p[:, labels.index("AF")])),
            "challenge_f1": float(np.mean([f1[labels.index(c)] for c in ("normal", "AF", "other")])),
            "refused": int((~ok).sum()),
        }

    rows = [{"corruption": "none", "severity": "", **score(records)}]
    for name in CORRUPTIONS:
        if name.startswith("limb_swap"):
            continue
        for sev in SEVERITIES[name]:
            rng = np.random.default_rng(seed)
            rows.append(
                {"corruption": name, "severity": sev, **score([corrupt(r, name, sev, rng) for r in records])}
            )
        print(f"  model: {name} done", file=sys.stderr)
    return rows


def to_markdown(model_rows: list[dict], flag_rows: list[dict], info: dict) -> str:
    head = (
        f"Model `{info['model']}` on {info['model_records']} held-out CinC 2017 test records"
        if model_rows
        else "Quality flags only (--no-model)"
    )
    out = [f"{head}; seed {info['seed']}; {info['seconds']:.0f} s on {info['cpu']}.", ""]
    if model_rows:
        out += [
            "| corruption | severity | AF AUROC | challenge F1 | refused |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in model_rows:
            out.append(
                f"| {r['corruption']} | {r['severity']} | {r['af_auroc']:.3f} | {r['challenge_f1']:.3f} | "
                f"{r['refused']} |"
            )
        out.append("")
    sets = list(dict.fromkeys(r["set"] for r in flag_rows))
    out += [
        "Quality flags: share of records with any quality flag (or refused), and with the flag meant "
        "for the corruption (in brackets).",
        "",
        "| corruption | severity | " + " | ".join(sets) + " |",
        "| --- | --- | " + "--- | " * len(sets),
    ]
    keys = list(dict.fromkeys((r["corruption"], str(r["severity"])) for r in flag_rows))
    for corruption, sev in keys:
        cells = []
        for s in sets:
            r = next(
                (
                    x
                    for x in flag_rows
                    if x["set"] == s and x["corruption"] == corruption and str(x["severity"]) == sev
                ),
                None,
            )
            if r is None:
                cells.append("")
            else:
                e = f" ({r['expected_flag']:.3f})" if r["expected_flag"] is not None else ""
                cells.append(f"{r['flagged']:.3f}{e}")
        out.append(f"| {corruption} | {sev} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--records", type=int, default=400, help="CinC test records for the model part (0: all 1,194)"
    )
    ap.add_argument(
        "--flag-records", type=int, default=0, help="CinC records for the flag part (0: all of the split)"
    )
    ap.add_argument(
        "--flag-split",
        default="test",
        choices=("train", "val", "test"),
        help="CinC 2017 split for the flag part (test: the records the thresholds were set on; "
        "train: records never looked at)",
    )
    ap.add_argument("--model", default="cinc2017-rhythm")
    ap.add_argument(
        "--aggregate",
        default=None,
        choices=("mean", "max", "logit"),
        help="how windows make a record (default: the model's own)",
    )
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "robustness"))
    args = ap.parse_args()
    if not SHARED.exists():
        print(f"skipped: {SHARED} (the shared data) is not here", file=sys.stderr)
        return 0
    import platform

    from ecgfounder.io import read_ecg

    t0 = time.time()
    cinc = cinc_records("test", None)
    model_items = cinc[: args.records] if args.records else cinc
    flag_items = [c for c in cinc_records(args.flag_split, None) if c[1] != "noisy"]
    flag_items = flag_items[: args.flag_records] if args.flag_records else flag_items

    def load(name: str):
        return read_ecg(SHARED / "cinc2017-dev" / f"{name}.hea").replace(record_id=name)

    model_rows = []
    if not args.no_model:
        model_rows = model_table(
            [load(n) for n, _ in model_items],
            [c for _, c in model_items],
            args.model,
            args.seed,
            args.aggregate,
        )
    sets = {
        f"CinC 2017 {args.flag_split} (1 lead)": [load(n) for n, _ in flag_items],
        "LUDB (12 leads)": [read_ecg(p) for p in sorted((SHARED / "ludb" / "data").glob("*.hea"))],
        "CinC 2021 samples (12 leads)": [
            read_ecg(p) for p in sorted((SHARED / "cinc2021-samples").glob("*.hea"))
        ],
    }
    flag_rows = flag_table(sets, args.seed)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    info = {
        "model": args.model,
        "model_records": len(model_items) if model_rows else 0,
        "seed": args.seed,
        "seconds": time.time() - t0,
        "cpu": cpu,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(
        json.dumps({"info": info, "model": model_rows, "flags": flag_rows}, indent=2)
    )
    md = to_markdown(model_rows, flag_rows, info)
    (out / "robustness.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
