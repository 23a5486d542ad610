"""Beats against reference annotations (ANSI/AAMI EC57 definitions, 150 ms match window).

    .venv/bin/python benchmarks/bench_beats.py

1. QRS detection: every LUDB record (cardiologists' QRS marks in every lead, one beat list per
   record, within the annotated span) and MIT-BIH record 100 (its .atr reference annotations):
   Se, +P, and the median fiducial offset.
2. Beat classes on record 100: N, S, V sensitivity and positive predictivity over matched beats.
3. Record-level ectopy on LUDB: a record with any S (V) beat found against ludb.csv's
   "Extrasystolies" statements (atrial / ventricular extrasystole), as a 2x2 table.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    import wfdb

    from ecgfounder.eval.beats import ec57_class, match_beats, score_beats
    from ecgfounder.io import read_ecg
    from ecgfounder.measurement.reference import ludb_qrs_times
    from ecgfounder.signal.beats import beat_features, classify_beats, detect_beats

    if not SHARED.is_dir():
        sys.exit(f"needs ../shared/data (not found at {SHARED})")
    ludb = SHARED / "ludb"
    statements = {}
    with open(ludb / "ludb.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            statements[int(row["ID"])] = (row.get("Extrasystolies") or "").lower()
    total = None
    offsets = []
    found = {"S": [], "V": []}
    truth = {"S": [], "V": []}
    t0 = time.perf_counter()
    detect_s = 0.0
    for i in range(1, 201):
        base = ludb / "data" / str(i)
        rec = read_ecg(str(base) + ".hea")
        ref, (lo, hi) = ludb_qrs_times(base)
        t1 = time.perf_counter()
        beats = detect_beats(rec.signal, rec.fs, rec.leads)
        feats = beat_features(rec.signal, rec.fs, beats.samples)
        classes = classify_beats(beats.times_s, feats, beats.confidence)
        detect_s += time.perf_counter() - t1
        t = beats.times_s
        inside = (t >= lo) & (t <= hi)
        s = score_beats(ref, t[inside])
        ri, di = match_beats(ref, t[inside], 0.15)
        offsets.extend(np.abs(ref[ri] - t[inside][di]) * 1000)
        total = s if total is None else total + s
        for k, word in (("S", "atrial extrasystole"), ("V", "ventricular extrasystole")):
            found[k].append(bool((classes == k).any()))
            truth[k].append(word in statements.get(i, ""))
    took = time.perf_counter() - t0
    print(f"LUDB, 200 records, 12 leads at 500 Hz ({took:.0f} s; detection and classes {detect_s:.1f} s)")
    print("| reference | beats | TP | FN | FP | Se | +P | median |offset| |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| LUDB (all 200) | {total.tp + total.fn} | {total.tp} | {total.fn} | {total.fp} | {total.se:.4f} | "
        f"{total.ppv:.4f} | {np.median(offsets):.1f} ms |"
    )
    base = SHARED / "wfdb-samples" / "100"
    rec = wfdb.rdrecord(str(base))
    ann = wfdb.rdann(str(base), "atr")
    keep = [i for i, s in enumerate(ann.symbol) if ec57_class(s)]
    ref_t = ann.sample[keep] / rec.fs
    ref_c = np.array([ec57_class(ann.symbol[i]) for i in keep])
    t1 = time.perf_counter()
    beats = detect_beats(rec.p_signal.T, rec.fs, rec.sig_name)
    feats = beat_features(rec.p_signal.T, rec.fs, beats.samples)
    classes = classify_beats(beats.times_s, feats, beats.confidence)
    wall = time.perf_counter() - t1
    s = score_beats(ref_t, beats.times_s, ref_classes=ref_c, det_classes=classes)
    ri, di = match_beats(ref_t, beats.times_s, 0.15)
    off = np.median(np.abs(ref_t[ri] - beats.times_s[di])) * 1000
    print(
        f"| MIT-BIH 100 (30 min, 2 leads, 360 Hz) | {s.tp + s.fn} | {s.tp} | {s.fn} | {s.fp} | {s.se:.4f} | "
        f"{s.ppv:.4f} | {off:.1f} ms |"
    )
    speed = rec.sig_len / rec.fs / wall
    print(f"\nrecord 100: {len(beats)} found (reference {len(ref_t)}), {wall:.2f} s ({speed:.0f}x real time)")
    print("| class | reference beats | found as the class | called the class | Se | +P |")
    print("| --- | --- | --- | --- | --- | --- |")
    for c in ("N", "S", "V"):
        hit, ref, called = s.classes[c]
        print(f"| {c} | {ref} | {hit} | {called} | {s.class_se(c):.3f} | {s.class_ppv(c):.3f} |")
    print("\nLUDB record-level ectopy (found any beat of the class vs the ludb.csv statement)")
    print("| class | records stating it | found | missed | found without it | sensitivity | specificity |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k in ("S", "V"):
        f, tr = np.array(found[k]), np.array(truth[k])
        tp, fn, fp, tn = (f & tr).sum(), (~f & tr).sum(), (f & ~tr).sum(), (~f & ~tr).sum()
        se, sp = tp / max(1, tp + fn), tn / max(1, tn + fp)
        print(f"| {k} | {tr.sum()} | {tp} | {fn} | {fp} | {se:.3f} | {sp:.3f} |")


if __name__ == "__main__":
    main()
