"""Choose the AF episode rules on the VALIDATION split (never the test split the monitor benchmark
reports): records assembled from validation CinC 2017 recordings, scored once by the model, then
every rule set of a grid scored on the saved window table.

    .venv/bin/python benchmarks/tune_monitor_rules.py [--model M] [--hours 1] [--seeds 0,1,2]

Objective per rule set, averaged over the seeds: min(duration sensitivity, duration positive
predictivity) - |burden error| - 0.005 x max(0, largest onset error - 10 s) - 0.01 x |episodes
detected - true episodes| (issue 30: burden, balanced duration Se/+P and no split episodes). Only
rule sets that merge across gaps up to the minimum episode length are tried (a non-AF gap shorter
than the shortest episode kept is not an episode). Prints the best rule sets; the first is what a
bundled model's registry entry carries (``episode_rules``), used by ``monitor`` unless options are
given; bench_monitor.py measures it on the test split.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_monitor import CINC, assemble, score_af  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cinc2017-rhythm-tiny")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    if not CINC.is_dir():
        sys.exit(f"{CINC} not found: the benchmark needs ../shared beside the project")
    from ecgfounder.monitor import EpisodeRules, find_episodes, fuse_rr, monitor, owned_spans

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            folder = Path(tmp) / str(seed)
            folder.mkdir()
            path, truth = assemble(args.hours, 100 + seed, folder, split="val")
            res = monitor(path, args.model, progress=False, report=False)
            runs.append((res.windows, res.summary["duration_s"], truth))
            print(
                f"seed {seed}: {res.summary['duration_s'] / 3600:.2f} h of validation recordings scored",
                flush=True,
            )
    # operating points down to on 0.2 (duration sensitivity against positive predictivity), and
    # merging across non-AF gaps up to the minimum episode length
    grid = dict(
        on=[0.2, 0.3, 0.4, 0.5, 0.6],
        off=[0.1, 0.15, 0.25, 0.35, 0.45],
        smooth_windows=[1, 3, 5],
        min_duration_s=[10.0, 20.0, 30.0],
        merge_gap_s=[10.0, 20.0, 30.0],
        rr_weight=[0.0, 0.25],
        rr_cv_center=[0.08, 0.12],
    )
    results = []
    for values in itertools.product(*grid.values()):
        kw = dict(zip(grid, values))
        if (
            kw["off"] > kw["on"]
            or kw["merge_gap_s"] < kw["min_duration_s"]
            or (kw["rr_weight"] == 0 and kw["rr_cv_center"] != 0.08)
        ):
            continue
        rules = EpisodeRules(**kw)
        scores = []
        for table, duration, truth in runs:
            valid = (table["quality"] == "ok").to_numpy()
            spans = owned_spans(table["start_s"].to_numpy(), 10.0, 5.0, duration)
            p = fuse_rr("AF", table["AF"].to_numpy(), table["rr_cv"].to_numpy(), rules)
            det = [(e.start_s, e.end_s) for e in find_episodes("AF", spans, p, valid, rules)]
            m = score_af(table, duration, det, truth)
            onset = m["onset_max"] if np.isfinite(m["onset_max"]) else 600.0
            scores.append(
                (
                    min(m["se"], m["pp"])
                    - abs(m["burden"] - m["true_burden"])
                    - 0.005 * max(0.0, onset - 10.0)
                    - 0.01 * abs(m["episodes_det"] - m["episodes_true"]),
                    m,
                )
            )
        results.append((float(np.mean([s for s, _ in scores])), kw, [m for _, m in scores]))
    results.sort(key=lambda r: -r[0])
    for objective, kw, ms in results[: args.top]:
        print(f"{objective:.3f} {json.dumps(kw)}")
        for m in ms:
            print(
                f"    Se {m['se']:.3f} +P {m['pp']:.3f} burden {100 * m['burden']:.1f}% vs "
                f"{100 * m['true_burden']:.1f}% "
                f"onset max {m['onset_max']:.1f} s ({m['onsets_found']}/{m['episodes_true']}), "
                f"episodes {m['episodes_det']}/{m['episodes_true']}"
            )


if __name__ == "__main__":
    main()
