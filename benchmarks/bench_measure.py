"""Measurements against LUDB's cardiologists: PR, QRS, QT, P duration and heart rate on all 200 records.

    python benchmarks/bench_measure.py [--runs runs/delineator] [--neurokit] [--write-shifts] [--out DIR]

Every record is delineated by the fold model that never saw it (``train_delineator.py`` first),
so the figures are out-of-fold. The reference is built from the cardiologists' per-lead onsets and
offsets by the same global definition (earliest onset, latest offset over the leads, median over
the beats). The fiducial calibration (a constant shift per global onset/offset, the median
difference to the cardiologists over matched beats) applied to a fold is estimated on the other
folds' records, never on the fold itself. Output: a table per interval (records
measured, records flagged as not measurable, mean and SD of the differences against the IEC limits),
heart-rate agreement on regular rhythms, QRS-axis agreement with LUDB's axis classes, and a
Bland-Altman plot per interval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LUDB = ROOT.parent / "shared" / "data" / "ludb"
INTERVALS = ("p_ms", "pr_ms", "qrs_ms", "qt_ms")
#: IEC 60601-2-25:2011 (from IEC 60601-2-51:2003) limits for global intervals on biological ECGs:
#: (|mean difference|, SD of the differences) in ms. See docs/measure.md for the source caveat.
LIMITS = {"p_ms": (10.0, 15.0), "pr_ms": (10.0, 10.0), "qrs_ms": (10.0, 10.0), "qt_ms": (25.0, 30.0)}
REGULAR = ("Sinus rhythm", "Sinus bradycardia", "Sinus tachycardia")


def fiducial_differences(ours: list, ref: list) -> dict[str, list[float]]:
    """Per fiducial, reference minus ours (ms) over the beats matched by QRS peak (within 100 ms)."""
    from ecgfounder.measurement.core import FIDUCIALS

    out: dict[str, list[float]] = {k: [] for k in FIDUCIALS}
    for b in ours:
        near = [r for r in ref if abs(r.qrs_peak - b.qrs_peak) <= 0.1]
        if not near:
            continue
        r = near[0]
        for k in FIDUCIALS:
            d = (getattr(r, k) - getattr(b, k)) * 1000
            if np.isfinite(d):
                out[k].append(d)
    return out


def span_heart_rate(ours: list, ref: list) -> float:
    """Our heart rate over the span the cardiologists annotated (their first to last beat, 100 ms
    margin): LUDB leaves the first and last beats of many records unannotated, so with ectopic
    beats the reference's mean RR covers a different set of intervals than the whole record's."""
    if len(ref) < 2:
        return float("nan")
    lo, hi = ref[0].qrs_peak - 0.1, ref[-1].qrs_peak + 0.1
    peaks = [b.qrs_peak for b in ours if lo <= b.qrs_peak <= hi]
    return 60.0 / float(np.mean(np.diff(peaks))) if len(peaks) >= 2 else float("nan")


def median_shifts(diffs: list[dict[str, list[float]]]) -> dict[str, float]:
    """The median difference per fiducial over all the given records' beats."""
    keys = diffs[0].keys() if diffs else ()
    return {k: round(float(np.median([x for d in diffs for x in d[k]])), 1) for k in keys}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=str(ROOT / "runs" / "delineator"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--neurokit", action="store_true", help="also measure with neurokit2's delineation")
    ap.add_argument("--agree", type=int, default=1, help="k-th earliest/latest lead for the global fiducials")
    ap.add_argument(
        "--write-shifts",
        action="store_true",
        help="store the calibration from all out-of-fold records in the bundled delineator",
    )
    ap.add_argument(
        "--in-sample",
        action="store_true",
        help="measure every record with the bundled delineator, which was trained on all 200 LUDB "
        "records: in-sample figures, labelled IN-SAMPLE in every output (for comparison only)",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "measure"))
    args = ap.parse_args()
    if not LUDB.exists():
        print(f"skipped: {LUDB} is not here", file=sys.stderr)
        return 0
    import pandas as pd

    from ecgfounder.eval.regression import plot_regression
    from ecgfounder.io import read_ecg
    from ecgfounder.measurement import global_beats, ludb_waves, measure, reference_measurements
    from ecgfounder.measurement.delineate import load_delineator, segment
    from ecgfounder.measurement.training import check_out_of_sample, fold_of

    t0 = time.time()
    runs = Path(args.runs)
    if args.in_sample:  # the bundled model (trained on all 200 records) for every record: labelled so
        models = [load_delineator()] * args.folds
    else:
        models = [load_delineator(runs / f"fold-{f}.safetensors") for f in range(args.folds)]
    meta = pd.read_csv(LUDB / "ludb.csv")
    items = []
    for rid, rhythm, axis in zip(meta["ID"], meta["Rhythms"], meta["Electric axis of the heart"].fillna("")):
        path = LUDB / "data" / f"{rid}.hea"
        rec = read_ecg(path)
        waves = ludb_waves(path)
        fold = fold_of(str(path), args.folds, args.seed)
        probs = segment(rec.signal, rec.fs, models[fold])
        raw = measure(rec, probabilities=probs, shifts_ms={}, agree=args.agree)
        ref_beats = global_beats(waves)
        items.append(
            {
                "record": int(rid),
                "fold": fold,
                "rec": rec,
                "probs": probs,
                "raw": raw.to_dict(),
                "ref": reference_measurements(waves),
                "diffs": fiducial_differences(raw.beats, ref_beats),  # reference: agree=1, always
                "ref_beats": ref_beats,
                "rhythm": str(rhythm).strip().replace("\n", "; "),
                "axis_class": str(axis).replace("Electric axis of the heart: ", "").strip(),
            }
        )
    # every figure below is reported only when no record was scored by a model trained on it
    sample = check_out_of_sample(
        [(str(LUDB / "data" / f"{it['record']}.hea"), models[it["fold"]].provenance) for it in items],
        allow_in_sample=args.in_sample,
    )
    # the calibration of each fold: median fiducial differences on the other folds' records
    shifts = {f: median_shifts([it["diffs"] for it in items if it["fold"] != f]) for f in range(args.folds)}
    shifts_all = median_shifts([it["diffs"] for it in items])
    rows = []
    for it in items:
        m = measure(it["rec"], probabilities=it["probs"], shifts_ms=shifts[it["fold"]], agree=args.agree)
        row = {
            "record": it["record"],
            "fold": it["fold"],
            "rhythm": it["rhythm"],
            "axis_class": it["axis_class"],
            **{f"ref_{k}": v for k, v in it["ref"].items()},
            **m.to_dict(),
            "n_beats": len(m.beats),
            "hr_bpm_ref_span": span_heart_rate(m.beats, it["ref_beats"]),
        }
        row.update({f"uncalibrated_{k}": v for k, v in it["raw"].items()})
        if args.neurokit:
            nk = measure(it["rec"], method="neurokit")
            row.update({f"nk_{k}": v for k, v in nk.to_dict().items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    if args.write_shifts and sample != "out-of-sample":
        raise SystemExit("--write-shifts needs out-of-fold models: the calibration would be in-sample")
    if args.write_shifts:
        from ecgfounder.measurement.delineate import DEFAULT_DELINEATOR, update_delineator_metadata

        update_delineator_metadata(
            DEFAULT_DELINEATOR,
            {"fiducial_shifts_ms": shifts_all, "fiducial_shifts_from": "out-of-fold LUDB, all 200 records"},
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "measure_ludb.csv", index=False)

    def table(prefix: str) -> list[dict]:
        res = []
        for c in INTERVALS:
            ours = df[c] if prefix == "" else df[f"{prefix}{c}"]
            ref = df[f"ref_{c}"]
            both = np.isfinite(ours) & np.isfinite(ref)
            d = (ours - ref)[both]
            lm, ls = LIMITS[c]
            res.append(
                {
                    "interval": c,
                    "measured": int(both.sum()),
                    "reference_available": int(np.isfinite(ref).sum()),
                    "flagged_not_measurable": int((~np.isfinite(ours) & np.isfinite(ref)).sum()),
                    "mean_diff": float(d.mean()),
                    "sd_diff": float(d.std(ddof=1)),
                    "limit_mean": lm,
                    "limit_sd": ls,
                    "within": bool(abs(d.mean()) <= lm and d.std(ddof=1) <= ls),
                }
            )
        return res

    ours = table("")
    raw_rows = table("uncalibrated_")
    nk = table("nk_") if args.neurokit else []
    regular = df["rhythm"].isin(REGULAR)
    hr_diff = (df["hr_bpm"] - df["ref_hr_bpm"])[regular]
    span_diff = (df["hr_bpm_ref_span"] - df["ref_hr_bpm"])[regular]
    hr = {
        "regular_records": int(regular.sum()),
        "within_2bpm": int((hr_diff.abs() <= 2).sum()),
        "max_abs_diff": float(hr_diff.abs().max()),
        "mean_diff": float(hr_diff.mean()),
        "outside_2bpm": {
            int(r): round(float(d), 2) for r, d in zip(df["record"][regular], hr_diff) if abs(d) > 2
        },
        "annotated_span_within_2bpm": int((span_diff.abs() <= 2).sum()),
        "annotated_span_max_abs_diff": float(span_diff.abs().max()),
    }
    no_p = df["measure_flags"].fillna("").str.contains("no_p_waves")
    af = df["rhythm"].str.contains("fibrillation|flutter", case=False)
    flags = {
        "af_or_flutter_records": int(af.sum()),
        "af_flutter_flagged_no_p": int((af & no_p).sum()),
        "sinus_flagged_no_p": int((~af & no_p).sum()),
        "paced_flagged": int(df["measure_flags"].fillna("").str.contains("paced").sum()),
    }

    def axis_class(a: float) -> str:
        if not np.isfinite(a):
            return "n/a"
        if a < 0:
            return "left axis deviation"
        if a > 90:
            return "right axis deviation"
        return "horizontal" if a < 30 else ("normal" if a <= 70 else "vertical")

    df["axis_ours"] = [axis_class(a) for a in df["qrs_axis_deg"]]
    axis_agree = float((df["axis_ours"] == df["axis_class"]).mean())
    result = {
        "sample": sample,
        "shifts_per_fold_ms": shifts,
        "shifts_all_ms": shifts_all,
        "intervals": ours,
        "uncalibrated": raw_rows,
        "neurokit": nk,
        "heart_rate": hr,
        "flags": flags,
        "axis_class_agreement": axis_agree,
        "seconds": time.time() - t0,
    }
    (out / "measure_ludb.json").write_text(json.dumps(result, indent=2, default=float))
    fin = df[[f"ref_{c}" for c in INTERVALS]].to_numpy(float)
    plot_regression(
        fin, df[list(INTERVALS)].to_numpy(float), [c.replace("_ms", " (ms)") for c in INTERVALS], out
    )
    lines = [
        f"**{sample}**: "
        + (
            "every record measured by a model that never saw it"
            if sample == "out-of-sample"
            else "the bundled delineator was trained on all 200 LUDB records it measures here"
        ),
        f"fiducial shifts (ms) per fold, from the other folds: {shifts}; {time.time() - t0:.0f} s",
        "",
        "| interval | measured | flagged not measurable | mean diff (ms) | SD (ms) | IEC limit mean / SD | "
        "within |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, rows_ in (("ecgfounder", ours), ("uncalibrated", raw_rows), ("neurokit2", nk)):
        for r in rows_:
            lines.append(
                f"| {r['interval']} ({name}) | {r['measured']} | {r['flagged_not_measurable']} | "
                f"{r['mean_diff']:+.1f} | {r['sd_diff']:.1f} | ±{r['limit_mean']:.0f} / {r['limit_sd']:.0f} "
                f"| "
                f"{'yes' if r['within'] else 'no'} |"
            )
    lines += [
        "",
        f"heart rate, {hr['regular_records']} regular-rhythm records: {hr['within_2bpm']} within 2 bpm, "
        f"max |diff| {hr['max_abs_diff']:.2f} bpm, mean diff {hr['mean_diff']:+.2f}; outside: "
        f"{hr['outside_2bpm']}; "
        f"over the annotated span only: {hr['annotated_span_within_2bpm']} within 2 bpm, "
        f"max |diff| {hr['annotated_span_max_abs_diff']:.2f}",
        f"flags: {flags}",
        f"QRS axis class agreement with LUDB: {axis_agree:.3f}",
    ]
    print("\n".join(lines))
    (out / "measure_ludb.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
