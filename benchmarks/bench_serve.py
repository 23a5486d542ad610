"""Bounded load test of `ecgfounder serve` on loopback: concurrent clients posting ECG uploads for a
fixed time; p50/p99 latency, throughput, errors and the server's memory (peak, and after the load).

    .venv/bin/python benchmarks/bench_serve.py [--model cinc2017-rhythm-tiny] [--clients 8]
        [--seconds 30] [--endpoint /v1/predict] [--upload-mb 0] [--npz-mvalues 0] [--slow-bodies 0]
        [--settle 10]

Uploads: real LUDB 12-lead records (`.hea` + `.dat`); or with `--upload-mb N` one synthetic
12-lead WFDB record of about N MB (590 s at the rate that makes it that size) for every client;
or with `--npz-mvalues M` a compressed 12-lead `.npz` of M million values (20: about 190 KB that
read into an 80 MB record).
`--endpoint "/v1/plot?measure=true"` loads the plotting and measuring route.

Each client thread connects from its own loopback address (127.0.0.10, .11, ...: Linux answers
the whole 127.0.0.0/8), as separate users would, so the server's per-address limit
(`--max-per-client`) applies to each alone; `--same-address` sends them all from 127.0.0.1.

`--slow-bodies N` opens N attack sockets from 127.0.0.1 for the whole run: each sends a complete
`POST /v1/predict` head with `Content-Length: 100000`, then one body byte every 2 s, and opens a
new socket whenever the server closes one. What is measured is what the attack does to the
other clients.

The server runs as its own process (`python -m ecgfounder serve`), the clients are threads here.
Memory: the server's resident set after a warm-up, its peak during the run (sampled every 0.1 s),
at the end of the run, and `--settle` seconds later (memory given back after load).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
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


def synthetic_upload(mb: float, folder: Path) -> list:
    """A 12-lead WFDB record (format 16) of about ``mb`` MB lasting 590 s."""
    import wfdb

    n = int(mb * 1e6 / 24)
    fs = n / 590.0
    t = np.arange(n) / fs
    sig = np.stack([np.sin(2 * np.pi * 1.2 * t + k) for k in range(12)], axis=1) * 1.0
    names = "I II III aVR aVL aVF V1 V2 V3 V4 V5 V6".split()
    wfdb.wrsamp(
        "big",
        fs=fs,
        units=["mV"] * 12,
        sig_name=names,
        p_signal=sig,
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(folder),
    )
    return [("file", (p.name, p.read_bytes())) for p in (folder / "big.hea", folder / "big.dat")]


def slow_body_attack(port: int, n: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """``n`` sockets that send a complete head, then a body byte every 2 s; renewed when closed."""
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode()
    socks: list[socket.socket | None] = [None] * n
    while not stop.is_set():
        for i in range(n):
            s = socks[i]
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", port), timeout=2)
                    s.sendall(head)
                    socks[i] = s
                    counts["opened"] += 1
                else:
                    s.sendall(b"{")
            except OSError:
                counts["closed by server"] += 1
                if s is not None:
                    s.close()
                socks[i] = None
        stop.wait(2.0)
    for s in socks:
        if s is not None:
            s.close()


def synthetic_npz(mvalues: float, folder: Path) -> list:
    """A compressed 12-lead ``.npz`` of ``mvalues`` million int16 values (uV) lasting 590 s: a few
    hundred KB on the wire, ``4 x mvalues`` MB once read as float32."""
    n = int(mvalues * 1e6 / 12)
    wave = (np.sin(2 * np.pi * 1.2 * np.arange(n) * 590.0 / n) * 1000).astype(np.int16)
    names = "I II III aVR aVL aVF V1 V2 V3 V4 V5 V6".split()
    path = folder / "long.npz"
    np.savez_compressed(
        path,
        signal=np.tile(wave, (12, 1)),
        fs=np.float64(n / 590.0),
        leads=np.array(names),
        units=np.array("uV"),
    )
    return [("file", (path.name, path.read_bytes()))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cinc2017-rhythm-tiny")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--records", type=int, default=50)
    ap.add_argument("--endpoint", default="/v1/predict")
    ap.add_argument("--upload-mb", type=float, default=0.0)
    ap.add_argument("--npz-mvalues", type=float, default=0.0)
    ap.add_argument("--slow-bodies", type=int, default=0)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--same-address", action="store_true", help="every client from 127.0.0.1")
    ap.add_argument("--server-arg", action="append", default=[], help="extra `ecgfounder serve` argument")
    args = ap.parse_args()
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    if args.npz_mvalues > 0:
        bodies = [synthetic_npz(args.npz_mvalues, tmp)]
        what = (
            f"synthetic 12-lead .npz uploads of {len(bodies[0][0][1][1]) / 1e3:.0f} KB "
            f"({args.npz_mvalues:g} million values)"
        )
    elif args.upload_mb > 0:
        bodies = [synthetic_upload(args.upload_mb, tmp)]
        what = f"synthetic 12-lead WFDB uploads of {sum(len(f[1][1]) for f in bodies[0]) / 1e6:.1f} MB"
    else:
        if not LUDB.is_dir():
            sys.exit(f"{LUDB} not found: the load test needs ../shared beside the project")
        bodies = []
        for i in range(1, args.records + 1):
            base = LUDB / str(i)
            bodies.append(
                [
                    ("file", (p.name, p.read_bytes()))
                    for p in (base.with_suffix(".hea"), base.with_suffix(".dat"))
                ]
            )
        what = "LUDB 12-lead uploads (.hea + .dat)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecgfounder",
            "serve",
            "--model",
            args.model,
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args.server_arg,
        ],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    stop_attack = threading.Event()
    attack_counts = {"opened": 0, "closed by server": 0}
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        for body in (bodies * 5)[:5]:  # warm-up
            httpx.post(f"{url}{args.endpoint}", files=body, timeout=120).raise_for_status()
        rss0 = rss_mb(server.pid)
        peak = [rss0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.1):
                peak[0] = max(peak[0], rss_mb(server.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        attacker = None
        if args.slow_bodies:
            attacker = threading.Thread(
                target=slow_body_attack,
                args=(port, args.slow_bodies, stop_attack, attack_counts),
                daemon=True,
            )
            attacker.start()
            time.sleep(1.0)  # the attack sockets are in place before the clients start
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors: list[str] = []
        lock = threading.Lock()
        stop = time.perf_counter() + args.seconds

        def client(k: int) -> None:
            source = None if args.same_address else f"127.0.0.{10 + k}"
            transport = httpx.HTTPTransport(local_address=source) if source else None
            with httpx.Client(timeout=120, transport=transport) as c:
                i = k
                while time.perf_counter() < stop:
                    t = time.perf_counter()
                    try:
                        r = c.post(f"{url}{args.endpoint}", files=bodies[i % len(bodies)])
                        code, text = r.status_code, r.text[:100]
                    except httpx.HTTPError as exc:
                        code, text = 0, f"{type(exc).__name__}: {exc}"[:100]
                    dt = time.perf_counter() - t
                    with lock:
                        latencies.append(dt)
                        statuses[code] = statuses.get(code, 0) + 1
                        if code != 200:
                            errors.append(f"{code} {text}")
                    i += args.clients

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stop_attack.set()
        if attacker is not None:
            attacker.join(5)
        sampling.set()
        rss1 = rss_mb(server.pid)
        time.sleep(args.settle)
        rss2 = rss_mb(server.pid)
        health = httpx.get(f"{url}/healthz").json()
    finally:
        stop_attack.set()
        server.terminate()
        server.wait(10)
    lat = np.array(latencies) * 1000
    print(
        f"model {args.model}, {args.clients} concurrent clients for {args.seconds:g} s on {args.endpoint}, "
        f"{what}, "
        f"server and clients on the same {len(os.sched_getaffinity(0))} CPUs"
    )
    if args.slow_bodies:
        print(
            f"slow-body attack: {args.slow_bodies} sockets from 127.0.0.1; {attack_counts['opened']} opened, "
            f"{attack_counts['closed by server']} closed by the server"
        )
    print(
        "clients from "
        + ("127.0.0.1" if args.same_address else f"127.0.0.10-{9 + args.clients} (one address each)")
    )
    print(
        f"requests {len(lat)}   not 200: {len(errors)}   statuses {dict(sorted(statuses.items()))}   "
        f"throughput {len(lat) / wall:.1f} req/s"
    )
    print(
        f"latency ms: p50 {np.percentile(lat, 50):.0f}   p90 {np.percentile(lat, 90):.0f}   "
        f"p99 {np.percentile(lat, 99):.0f}   max {lat.max():.0f}"
    )
    print(
        f"server RSS MB: after warm-up {rss0:.0f}, peak {peak[0]:.0f}, at the end {rss1:.0f}, "
        f"{args.settle:g} s later {rss2:.0f}; model batches {health['batches']} for {health['windows']} "
        f"windows"
    )
    if errors:
        print("first errors:", *errors[:5], sep="\n  ")


if __name__ == "__main__":
    main()
