"""Limb-reversal flags by diagnosis group: false alarms on clean 12-lead records, detection of
simulated LA/RA and RA/LL reversals, on every 12-lead record in ``../shared`` (the 200 LUDB records
with their cardiologists' diagnoses, the 50 CinC 2021 samples with their SNOMED CT codes).

    .venv/bin/python benchmarks/bench_limb_reversal.py [--rule score|p-gated] [--out DIR]

``--rule p-gated`` (the default, the package's rule): a reversal's morphology score must be
positive and the P waves agree (present and negative in lead I for LA/RA, in lead II for RA/LL),
or the score alone above 0.45. ``--rule score``: the previous rule, any positive score. The
simulated reversals recompute the limb leads as the swapped electrodes would have recorded them
(``ecgfounder.eval.robustness``). Output: a Markdown table (group, records, false alarms,
detection of each reversal) printed and written to ``DIR/limb_reversal.md``, and a CSV per record.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
# SNOMED CT codes of the CinC 2020/2021 labels read as infarction or ischaemia
MI_CODES = {
    "164865005",
    "164861001",
    "426434006",
    "425419005",
    "413844008",
    "57054005",
    "54329005",
    "164867002",
    "413444003",
    "426396005",
}


def _text(v: object) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).lower()


def ludb_groups(row: object) -> list[str]:
    rh, ax, co, hy, pa, isc, rep = (
        _text(row[c])
        for c in (  # type: ignore[index]
            "Rhythms",
            "Electric axis of the heart",
            "Conduction abnormalities",
            "Hypertrophies",
            "Cardiac pacing",
            "Ischemia",
            "Non-specific repolarization abnormalities",
        )
    )
    g = ["LUDB", "AF or flutter" if ("fibrillation" in rh or "flutter" in rh) else "sinus rhythms"]
    if "left axis" in ax:
        g.append("left axis deviation")
    elif "right axis" in ax:
        g.append("right axis deviation")
    elif ax:
        g.append("normal, vertical or horizontal axis")
    for words, name in (
        (("right bundle",), "right bundle branch block"),
        (("left bundle",), "left bundle branch block"),
        (("hemiblock",), "left anterior hemiblock"),
        (("av block", "av-block"), "AV block"),
    ):
        if any(w in co for w in words):
            g.append(name)
    if "left ventricular hypertrophy" in hy:
        g.append("left ventricular hypertrophy")
    if "right" in hy:
        g.append("right atrial or ventricular overload")
    if pa:
        g.append("paced")
    if isc:
        g.append("ischemia, infarction or scar (any)")
    if "inferior" in isc:
        g.append("inferior ischemia, infarction or scar")
    if any(w in isc for w in ("lateral", "anterior", "septal", "apical")):
        g.append("anterior, lateral or septal ischemia, infarction or scar")
    if rep:
        g.append("non-specific repolarization abnormalities")
    return g


def cinc_groups(codes: set[str]) -> list[str]:
    g = ["CinC 2021 samples"]
    if codes & MI_CODES:
        g.append("infarction or ischaemia (SNOMED)")
    if "39732003" in codes:
        g.append("left axis deviation")
    if "47665007" in codes:
        g.append("right axis deviation")
    if codes & {"164889003", "164890007"}:
        g.append("AF or flutter")
    return g


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rule", choices=("p-gated", "score"), default="p-gated")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "limb_reversal"))
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is not here", file=sys.stderr)
        return 0
    import pandas as pd

    from ecgfounder import read_ecg
    from ecgfounder.eval.robustness import corrupt
    from ecgfounder.signal.artifacts import limb_reversal

    kw = {} if args.rule == "p-gated" else {"strong": -np.inf}  # score alone decides: the previous rule
    items = []
    meta = pd.read_csv(DATA / "ludb" / "ludb.csv")
    for _, row in meta.iterrows():
        items.append((DATA / "ludb" / "data" / f"{row['ID']}.hea", ludb_groups(row)))
    for h in sorted((DATA / "cinc2021-samples").glob("*.hea")):
        items.append((h, None))
    t0 = time.time()
    rows = []
    for path, groups in items:
        rec = read_ecg(path)
        if groups is None:
            groups = cinc_groups(set(rec.codes))
        out = {"record": path.stem, "groups": "; ".join(["all", *groups])}
        for name, label in (("clean", "clean"), ("limb_swap_LA/RA", "LA/RA"), ("limb_swap_RA/LL", "RA/LL")):
            x = rec if name == "clean" else corrupt(rec, name, 1.0, 0)
            out[label] = limb_reversal(np.asarray(x.signal, np.float64), x.fs, x.leads, **kw) or ""
        rows.append(out)
    df = pd.DataFrame(rows)
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for _, r in df.iterrows():
        for g in r["groups"].split("; "):
            t = table[g]
            t[0] += 1
            t[1] += r["clean"] != ""
            t[2] += r["LA/RA"] == "LA/RA"
            t[3] += r["RA/LL"] == "RA/LL"
    lines = [
        f"rule: {args.rule}; {len(df)} 12-lead records; {time.time() - t0:.0f} s",
        "",
        "| group | records | false alarms (clean) | LA/RA detected | RA/LL detected |",
        "| --- | --- | --- | --- | --- |",
    ]
    for g, (n, fa, la, rl) in sorted(table.items(), key=lambda kv: (kv[0] != "all", -kv[1][0], kv[0])):
        lines.append(f"| {g} | {n} | {fa} ({fa / n:.1%}) | {la / n:.1%} | {rl / n:.1%} |")
    print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"limb_reversal_{args.rule}.md").write_text("\n".join(lines) + "\n")
    df.to_csv(out / f"limb_reversal_{args.rule}.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
