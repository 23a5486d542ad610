"""End-to-end prediction throughput (files -> table) and peak memory, with and without reading
processes, on real CinC 2017 records (300 Hz, 9-61 s, single lead).

    .venv/bin/python benchmarks/bench_predict.py [--files 200] [--arch base|tiny]

The model is the released single-lead architecture with random weights (the speed does not depend
on the weights; no download needed). Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CINC = ROOT.parent / "shared" / "data" / "cinc2017-dev"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--arch", default="base", choices=["base", "tiny"])
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    if not CINC.is_dir():
        sys.exit(f"{CINC} not found: the benchmark needs ../shared beside the project")
    import torch

    import ecgfounder
    from ecgfounder import InputContract

    torch.manual_seed(0)
    name = "ecgfounder-1lead" if args.arch == "base" else "tiny"
    model = ecgfounder.create_model(name, **({"in_channels": 1} if args.arch == "tiny" else {})).eval()
    model.info.contract = InputContract(leads=("I",))
    names = (CINC / "RECORDS").read_text().split()[: args.files]
    files = [CINC / f"{n}.hea" for n in names]
    print(
        f"{len(files)} CinC 2017 files, model {name} ({model.num_parameters():,} parameters), "
        f"batch {args.batch_size}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'reading':<26} {'files/s':>8} {'windows/s':>10} {'s':>7} {'peak RSS MB':>12}")
    for workers in (0, 1):
        p = ecgfounder.Predictor(model, workers=workers, batch_size=args.batch_size, progress=False)
        t = time.perf_counter()
        df = p.predict(files)
        dt = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        label = "in process" if workers == 0 else f"{workers} worker process(es)"
        print(f"{label:<26} {len(df) / dt:8.1f} {df['n_windows'].sum() / dt:10.1f} {dt:7.1f} {rss:12.0f}")
    # model alone on the same number of windows, for comparison
    x = torch.randn(args.batch_size, 1, 5000)
    with torch.inference_mode():
        model(x)
        t = time.perf_counter()
        n = 0
        while time.perf_counter() - t < 5:
            model(x)
            n += args.batch_size
    print(f"{'model only (random input)':<26} {'':>8} {n / (time.perf_counter() - t):10.1f}")


if __name__ == "__main__":
    main()
