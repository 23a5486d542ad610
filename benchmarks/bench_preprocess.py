"""Preprocessing throughput: the upstream way (scipy filtfilt + medfilt lead by lead, one ECG at a
time) against ecgfounder.preprocess on the same real 12-lead ECGs, in one run.

    .venv/bin/python benchmarks/bench_preprocess.py [--records 200] [--repeats 3]

Data: LUDB (../shared/data/ludb), 12 leads x 5000 samples at 500 Hz, read with wfdb.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import signal

ROOT = Path(__file__).resolve().parents[1]
LUDB = ROOT.parent / "shared" / "data" / "ludb" / "data"


def upstream(x: np.ndarray, fs: int = 500) -> np.ndarray:
    """The official filter_bandpass + global z-score, lead by lead."""
    b, a = signal.iirnotch(50, 30, fs)
    bb, ba = signal.butter(4, [0.67, 40], btype="bandpass", fs=fs)
    out = np.empty_like(x)
    for i, lead in enumerate(x):
        y = signal.filtfilt(b, a, lead)
        y = signal.filtfilt(bb, ba, y)
        out[i] = y - signal.medfilt(y, 201)
    return (out - out.mean()) / (out.std() + 1e-8)


def load(n: int) -> np.ndarray:
    import wfdb

    if not LUDB.is_dir():
        sys.exit(f"LUDB not found at {LUDB}: the benchmark needs ../shared beside the project")
    names = sorted({p.stem for p in LUDB.glob("*.hea")}, key=int)[:n]
    return np.stack([wfdb.rdsamp(str(LUDB / name))[0].T for name in names]).astype(np.float64)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from ecgfounder.signal.preprocess import numba_available, preprocess

    x = load(args.records)
    n = len(x)
    print(f"{n} LUDB ECGs, 12 x 5000 samples; {os.cpu_count()} CPU(s); numba: {numba_available()}")
    preprocess(x[:2], backend="numba" if numba_available() else "scipy")  # JIT warm-up / cache load
    ref = np.stack([upstream(r) for r in x])
    rows = [("upstream (scipy per lead, per ECG)", lambda: [upstream(r) for r in x])]
    rows.append(("ecgfounder scipy backend, batch", lambda: preprocess(x, backend="scipy", dtype=np.float64)))
    if numba_available():
        rows.append(
            (
                "ecgfounder numba, 1 thread",
                lambda: preprocess(x, backend="numba", workers=1, dtype=np.float64),
            )
        )
        rows.append(("ecgfounder numba, all cores", lambda: preprocess(x, backend="numba", dtype=np.float64)))
    base = None
    print(f"{'path':<38} {'ms/ECG':>8} {'ECG/s':>8} {'speed-up':>9} {'max |diff|':>11}")
    for name, fn in rows:
        t = best_of(fn, args.repeats) / n
        base = base or t
        out = fn() if name.startswith("ecgfounder") else ref
        diff = float(np.abs(np.asarray(out) - ref).max())
        print(f"{name:<38} {t * 1e3:8.3f} {1 / t:8.0f} {base / t:8.2f}x {diff:11.2e}")


if __name__ == "__main__":
    main()
