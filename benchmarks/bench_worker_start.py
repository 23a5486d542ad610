"""What the reading workers' start costs: the same files read through ``prepared_stream`` with one
worker, in a process whose main module is a script (workers forked from it) and in one whose main
module is not (workers from a forkserver started on first use), each a fresh process, ``--runs``
times.

    .venv/bin/python benchmarks/bench_worker_start.py [--files 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CINC = ROOT.parent / "shared" / "data" / "cinc2017-dev"

CHILD = """
import sys, time
import torch  # noqa: F401 - as in a process that scores or trains
from ecgfounder.contract import InputContract
from ecgfounder.io.sources import Source
from ecgfounder.signal import PrepareOptions, prepared_stream, worker_context

paths = sys.argv[1:]
t = time.perf_counter()
items = list(prepared_stream([Source(p) for p in paths], PrepareOptions(InputContract(leads=("I",))), 1))
assert all(i.error is None for i in items)
print(worker_context().get_start_method(), f"{time.perf_counter() - t:.2f}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not CINC.is_dir():
        sys.exit(f"{CINC} not found: the benchmark needs ../shared beside the project")
    paths = [str(p) for p in sorted(CINC.glob("A0*.hea"))[: args.files]]
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "score.py"
        script.write_text(CHILD)
        for _ in range(args.runs):
            for cmd in ([sys.executable, str(script)], [sys.executable, "-c", CHILD]):
                out = subprocess.run([*cmd, *paths], capture_output=True, text=True, check=True).stdout
                method, seconds = out.split()
                times.setdefault(method, []).append(float(seconds))
    for method, ts in times.items():
        print(
            f"{method:>10}: {len(paths)} files, 1 worker: {min(ts):.2f}-{max(ts):.2f} s over {len(ts)} runs"
        )


if __name__ == "__main__":
    main()
