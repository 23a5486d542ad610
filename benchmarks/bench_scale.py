"""Archive runs at scale: records/s of the engines in the same run, their overhead per record, and
the peak memory of the driver and the workers.

Inputs: N synthetic 10 s single-lead WFDB records (300 Hz, 16-bit, a beating sinus-like wave with
noise; written once into --data), or real CinC 2017 recordings (``--real``). Each configuration
runs in a fresh process, one after the other:

* ``read``: reading and preparation alone in this process (one core; no model);
* ``single``: ``Predictor.predict_to_file``-style single-file path (``ecgfounder predict -o``);
* ``local``: the run-directory engine in this process (``--run-dir``, ``--engine local``);
* ``ray1``/``ray2``: Ray Data with 1 and 2 model actors on a local cluster of this machine.

Peak memory: the driver's (VmHWM) and every Ray worker's, sampled every 0.2 s from /proc.

    .venv/bin/python benchmarks/bench_scale.py --records 2000 --configs single,local,ray1,ray2
    .venv/bin/python benchmarks/bench_scale.py --records 100000 --configs ray2 --block-size 256
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CINC = ROOT.parent / "shared" / "data" / "cinc2017-dev"


def synthetic(folder: Path, n: int, fs: int = 300, seconds: int = 10) -> Path:
    """N WFDB records (header + format-16 data) in ``folder``, written directly (fast)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f".done-{n}"
    if done.is_file():
        return folder
    rng = np.random.default_rng(0)
    t = np.arange(fs * seconds) / fs
    for i in range(n):
        hr = rng.uniform(50, 110) / 60
        phase = (t * hr + rng.uniform()) % 1.0
        wave = 1.2 * np.exp(-(((phase - 0.3) / 0.012) ** 2)) + 0.25 * np.exp(-(((phase - 0.6) / 0.05) ** 2))
        x = (wave + rng.normal(0, 0.03, t.size)) * 1000
        name = f"s{i:07d}"
        sub = folder / name[:5]
        sub.mkdir(exist_ok=True)
        x.astype("<i2").tofile(sub / f"{name}.dat")
        (sub / f"{name}.hea").write_text(f"{name} 1 {fs} {t.size}\n{name}.dat 16 1000/mV 16 0 0 0 0 ECG\n")
    done.touch()
    return folder


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _ray_workers() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::") or b"default_worker.py" in cmd:
                pids.append(int(entry.name))
    return pids


def child(config: str, inputs: list[str], out: Path, block_size: int) -> dict:
    """One configuration, in this (fresh) process."""
    peak_workers: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in _ray_workers():
                peak_workers[pid] = max(peak_workers.get(pid, 0.0), _rss_mb(pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    init_s = 0.0
    if config == "read":  # reading and preparation alone, one core: what a reading task costs
        from ecgfounder.infer import Predictor
        from ecgfounder.io.sources import Source
        from ecgfounder.signal.stream import prepare_item

        prepare = Predictor("cinc2017-rhythm-tiny", progress=False).prepare
        records = sum(prepare_item(Source(f), prepare).error is None for f in inputs)
    elif config == "single":
        from ecgfounder.infer import Predictor
        from ecgfounder.infer.runs import predict_to_file

        summary = predict_to_file(Predictor("cinc2017-rhythm-tiny", progress=False), inputs, out / "pred.csv")
        records = summary.records
    else:
        from ecgfounder.infer.archive import run_archive

        kwargs: dict = {}
        if config.startswith("ray"):
            import ray

            t = time.perf_counter()
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            init_s = time.perf_counter() - t
            kwargs = dict(engine="ray", workers=int(config[3:]))
        s = run_archive(
            "cinc2017-rhythm-tiny", inputs, out / "run", block_size=block_size, progress=False, **kwargs
        )
        records = s.records
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    return {
        "config": config,
        "records": records,
        "wall_s": round(wall, 2),
        "ray_init_s": round(init_s, 2),
        "records_per_s": round(records / (wall - init_s), 1),
        "driver_peak_mb": round(_rss_mb(os.getpid(), "VmHWM"), 0),
        "workers_seen": len(peak_workers),
        "worker_peak_mb_max": round(max(peak_workers.values(), default=0.0), 0),
        "workers_peak_mb_sum": round(sum(peak_workers.values()), 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--real", action="store_true", help="CinC 2017 recordings instead of synthetic ones")
    ap.add_argument("--configs", default="single,local,ray1,ray2")
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--data", default="/tmp/ecgfounder-bench-scale", help="where synthetic records go")
    ap.add_argument("--out", default="/tmp/ecgfounder-bench-scale-out")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.real:
        inputs = sorted(str(p) for p in CINC.glob("*.hea"))[: args.records]
    else:
        folder = synthetic(Path(args.data) / f"n{args.records}", args.records)
        inputs = sorted(str(p) for p in folder.rglob("*.hea"))
    if args.child:
        out = Path(args.out) / args.child
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        print(json.dumps(child(args.child, inputs, out, args.block_size)))
        return
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model:")), "?")
    print(f"{len(inputs)} records ({'CinC 2017' if args.real else 'synthetic'}), lscpu model {model}, "
          f"{os.cpu_count()} CPUs", file=sys.stderr)  # fmt: skip
    rows = []
    for config in args.configs.split(","):
        cmd = [sys.executable, __file__, "--records", str(args.records), "--child", config]
        cmd += ["--block-size", str(args.block_size), "--data", args.data, "--out", args.out]
        cmd += ["--real"] if args.real else []
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"{config} failed:\n{res.stderr[-3000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    base = next((r for r in rows if r["config"] == "single"), None)
    head = "| config | records | wall s | Ray start s | records/s | vs single | driver peak MB "
    print(head + "| worker peak MB (max / sum) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ratio = f"{r['records_per_s'] / base['records_per_s']:.2f}x" if base else ""
        workers = (
            f"{r['worker_peak_mb_max']:.0f} / {r['workers_peak_mb_sum']:.0f}" if r["workers_seen"] else ""
        )
        start = r["ray_init_s"] or ""
        print(
            f"| {r['config']} | {r['records']} | {r['wall_s']} | {start} | {r['records_per_s']} "
            f"| {ratio} | {r['driver_peak_mb']:.0f} | {workers} |"
        )


if __name__ == "__main__":
    main()
