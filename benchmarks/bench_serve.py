"""Bounded load test of `ecgfounder serve` on loopback: concurrent clients posting real LUDB
records for a fixed time; p50/p99 latency, throughput, errors and the server's memory.

    .venv/bin/python benchmarks/bench_serve.py [--model cinc2017-rhythm-tiny] [--clients 8]
        [--seconds 30]

The server runs as its own process (`python -m ecgfounder serve`), the clients are threads here.
Memory: the server's resident set after a warm-up and at the end (flat = no leak per request).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LUDB = ROOT.parent / "shared" / "data" / "ludb" / "data"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cinc2017-rhythm-tiny")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--records", type=int, default=50)
    args = ap.parse_args()
    import httpx

    if not LUDB.is_dir():
        sys.exit(f"{LUDB} not found: the load test needs ../shared beside the project")
    bodies = []
    for i in range(1, args.records + 1):
        base = LUDB / str(i)
        bodies.append([("file", (p.name, p.read_bytes())) for p in (base.with_suffix(".hea"), base.with_suffix(".dat"))])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "ecgfounder", "serve", "--model", args.model, "--port",
                               str(port), "--log-level", "warning"], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        for body in bodies[:5]:  # warm-up
            httpx.post(f"{url}/v1/predict", files=body, timeout=60).raise_for_status()
        rss0 = rss_mb(server.pid)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop = time.perf_counter() + args.seconds

        def client(k: int) -> None:
            with httpx.Client(timeout=60) as c:
                i = k
                while time.perf_counter() < stop:
                    t = time.perf_counter()
                    r = c.post(f"{url}/v1/predict", files=bodies[i % len(bodies)])
                    dt = time.perf_counter() - t
                    with lock:
                        latencies.append(dt)
                        if r.status_code != 200:
                            errors.append(f"{r.status_code} {r.text[:100]}")
                    i += args.clients

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss1 = rss_mb(server.pid)
        health = httpx.get(f"{url}/healthz").json()
    finally:
        server.terminate()
        server.wait(10)
    lat = np.array(latencies) * 1000
    print(f"model {args.model}, {args.clients} concurrent clients for {args.seconds:g} s, LUDB 12-lead uploads "
          f"(.hea + .dat), server and clients on the same {len(__import__('os').sched_getaffinity(0))} CPUs")
    print(f"requests {len(lat)}   errors {len(errors)}   throughput {len(lat) / wall:.1f} req/s")
    print(f"latency ms: p50 {np.percentile(lat, 50):.0f}   p90 {np.percentile(lat, 90):.0f}   "
          f"p99 {np.percentile(lat, 99):.0f}   max {lat.max():.0f}")
    print(f"server RSS MB: after warm-up {rss0:.0f}, at the end {rss1:.0f} ({rss1 - rss0:+.0f}); "
          f"model batches {health['batches']} for {health['windows']} windows")
    if errors:
        print("first errors:", *errors[:5], sep="\n  ")


if __name__ == "__main__":
    main()
