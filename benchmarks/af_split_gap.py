"""Why the AF burden stays low on the test split (issue 30): the bundled models' AF probability
on whole CinC 2017 AF recordings of the validation split (used to choose the episode rules) and
of the test split (used to measure them), and a model-free RR irregularity on the same recordings.

    .venv/bin/python benchmarks/af_split_gap.py [--models cinc2017-rhythm,cinc2017-rhythm-tiny]

Per split and model: AF recordings, the share with AF probability below 0.5 and below 0.2. Per
split and class (AF, normal, other): the median RR irregularity (median absolute successive RR
difference over the median RR, beats of ``ecgfounder.signal.beats``), over all recordings and over
the AF recordings the model misses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_monitor import CINC, heldout  # noqa: E402


def irregularity(name: str) -> float:
    import wfdb

    from ecgfounder.signal.beats import detect_beats

    x, fields = wfdb.rdsamp(str(CINC / name))
    rr = np.diff(detect_beats(x[:, 0][None], fields["fs"]).times_s)
    rr = rr[(rr > 0.25) & (rr < 3.0)]
    return float(np.median(np.abs(np.diff(rr))) / np.median(rr)) if len(rr) >= 5 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="cinc2017-rhythm,cinc2017-rhythm-tiny")
    args = ap.parse_args()
    if not CINC.is_dir():
        sys.exit(f"{CINC} not found: the benchmark needs ../shared beside the project")
    import pandas as pd

    from ecgfounder import Predictor

    pools = {split: heldout(split) for split in ("val", "test")}
    irr = {
        split: {
            cls: np.array([irregularity(n) for n in pools[split][cls]]) for cls in ("AF", "normal", "other")
        }
        for split in pools
    }
    print(
        "| model | split | AF recordings | AF probability < 0.5 | < 0.2 "
        "| RR irregularity of the missed, median |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for model in args.models.split(","):
        pred = Predictor(model, progress=False)
        for split in ("val", "test"):
            names = pools[split]["AF"]
            p = pd.DataFrame(pred.predict([CINC / f"{n}.hea" for n in names]))["AF"].to_numpy(float)
            miss = p < 0.5
            print(
                f"| {model} | {split} | {len(p)} | {miss.sum()} ({miss.mean():.0%}) "
                f"| {(p < 0.2).mean():.0%} | "
                f"{np.nanmedian(irr[split]['AF'][miss]) if miss.any() else float('nan'):.3f} |",
                flush=True,
            )
    print("\n| split | class | recordings | RR irregularity median | 90th percentile |")
    print("| --- | --- | --- | --- | --- |")
    for split in irr:
        for cls, v in irr[split].items():
            print(f"| {split} | {cls} | {len(v)} | {np.nanmedian(v):.3f} | {np.nanpercentile(v, 90):.3f} |")


if __name__ == "__main__":
    main()
