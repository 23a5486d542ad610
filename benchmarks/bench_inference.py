"""Inference speed of every fast path against fp32 eager, measured in the same run, with peak
memory; end-to-end throughput (files -> predictions) on a directory of real 12-lead records next
to model-only throughput; and the drift of each fast path against fp32 on real records.

    .venv/bin/python benchmarks/bench_inference.py [--model ecgfounder-12lead] [--seconds 5]
        [--batches 1,16,64] [--paths fp32,bf16,onnx,int8] [--compile] [--end-to-end 200]
        [--drift 300]

Paths: ``fp32`` eager PyTorch, ``bf16`` autocast, ``compile`` (torch.compile; add ``--compile``,
slow to build), ``onnx`` (ONNX Runtime fp32 of ``ecgfounder export``), ``int8`` (ONNX Runtime,
static QDQ quantisation calibrated on 64 windows of real LUDB records, as ``ecgfounder export
--int8``). Each path runs in a fresh process so its peak resident memory is its own. On CUDA
(when available) the paths are fp32, fp16, bf16 and compile with CUDA graphs.

The released architecture with random weights is used when the weights are not available (speed
does not depend on the weights). End to end: the LUDB 12-lead records in ../shared/data/ludb
through ``Predictor`` (reading + preprocessing in worker processes). Drift: the bundled
single-lead model scored in fp32 and in each fast path on held-out CinC 2017 records (int8
calibrated on training-split records): the largest probability difference and the AF AUROC change.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"


def _load(name: str):
    import torch

    import ecgfounder
    from ecgfounder.errors import WeightsUnavailableError

    try:
        return ecgfounder.load_model(name, local_files_only=True), "released weights"
    except (WeightsUnavailableError, ecgfounder.CheckpointError, KeyError):
        torch.manual_seed(0)
        return ecgfounder.create_model(name).eval(), "random weights"


def _runner(path: str, model_name: str, files: dict[str, str], device: str):
    """A callable x (numpy) -> outputs for one path, built in the measuring process."""
    import torch

    if path in ("onnx", "int8"):
        from ecgfounder.export import OnnxModel

        m = OnnxModel(files[path], threads=torch.get_num_threads())
        return lambda x: m.run(x)
    model, _ = _load(model_name)
    model = model.to(device)
    fn = model
    if path == "compile":
        fn = torch.compile(model, dynamic=False, mode="reduce-overhead" if device == "cuda" else None)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(path)

    def run(x):
        with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            out = fn(torch.from_numpy(x).to(device))
            if device == "cuda":
                torch.cuda.synchronize()
            return out

    return run


def measure(
    path: str,
    model_name: str,
    files: dict[str, str],
    device: str,
    batches: list[int],
    leads: int,
    seconds: float,
) -> tuple[dict[int, float], float]:
    """ECG/s per batch size and the process's peak RSS (MB); run in a child process."""
    run = _runner(path, model_name, files, device)
    rates = {}
    for batch in batches:
        x = np.random.default_rng(0).standard_normal((batch, leads, 5000)).astype(np.float32)
        run(x)
        run(x)  # warm-up (compilation, graph capture)
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            run(x)
            n += batch
        rates[batch] = n / (time.perf_counter() - t)
    return rates, peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark (VmHWM: reset by exec, unlike ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_child(*args):
    import multiprocessing as mp

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:  # fork after OpenMP can hang
        return pool.submit(measure, *args).result()


def end_to_end(model, files: list[Path], paths: dict[str, dict], seconds: float) -> None:
    import ecgfounder

    print(
        f"\nend to end: {len(files)} LUDB 12-lead records (10 s, 500 Hz) -> predictions "
        f"(Predictor, batch 32, reading in worker processes) vs the same model alone"
    )
    print(f"{'path':<10} {'files/s':>8} {'model-only ECG/s':>17} {'end-to-end share':>17}")
    for name, kw in paths.items():
        p = ecgfounder.Predictor(model, batch_size=32, progress=False, **kw)
        p.predict(files[:8])  # warm-up: worker start, first batch
        t = time.perf_counter()
        df = p.predict(files)
        rate = len(df) / (time.perf_counter() - t)
        x = np.random.default_rng(0).standard_normal((32, model.config.in_channels, 5000)).astype(np.float32)
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            p.forward(x, False)
            n += 32
        alone = n / (time.perf_counter() - t)
        print(f"{name:<10} {rate:8.1f} {alone:17.1f} {rate / alone:16.0%}")


def drift(n: int, paths: list[str]) -> None:
    import ecgfounder
    from ecgfounder.data import cinc2017_manifest
    from ecgfounder.eval import auroc

    data = SHARED / "cinc2017-dev"
    if not data.is_dir():
        print("drift: ../shared/data/cinc2017-dev not found, skipped")
        return
    man = cinc2017_manifest(data, seed=0, val_fraction=0.1, test_fraction=0.2)
    test = man.indices("test")[:n]
    files = [man.paths[i] for i in test]
    calib = [man.paths[i] for i in man.indices("train")[:32]]
    af = man.y[test] == 1
    labels = ["normal", "AF", "other", "noisy"]
    ref = ecgfounder.Predictor("cinc2017-rhythm-tiny", progress=False).predict(files)
    a0 = auroc(af, ref["AF"].to_numpy())
    print(
        f"\ndrift vs fp32 on {len(files)} held-out CinC 2017 records (bundled model, AF AUROC fp32 {a0:.4f}):"
    )
    for path in paths:
        kw = {"precision": path} if path in ("bf16", "int8") else {"compile": True}
        if path == "int8":
            kw["calibration"] = calib
        got = ecgfounder.Predictor("cinc2017-rhythm-tiny", progress=False, **kw).predict(files)
        diff = float(np.abs(ref[labels].to_numpy(float) - got[labels].to_numpy(float)).max())
        a1 = auroc(af, got["AF"].to_numpy())
        print(f"  {path:<8} max |prob diff| {diff:.4f}   AF AUROC {a1:.4f} ({a1 - a0:+.4f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ecgfounder-12lead")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument(
        "--paths",
        default=None,
        help="comma-separated (default: fp32,bf16,onnx,int8 on CPU; fp32,fp16,bf16 on CUDA)",
    )
    ap.add_argument("--compile", action="store_true", help="add the torch.compile path")
    ap.add_argument("--end-to-end", type=int, default=200, metavar="N", help="LUDB records (0: skip)")
    ap.add_argument("--drift", type=int, default=300, metavar="N", help="CinC records (0: skip)")
    args = ap.parse_args()
    import torch

    from ecgfounder.export import calibration_windows, export_model, quantize_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    default = "fp32,fp16,bf16" if device == "cuda" else "fp32,bf16,onnx,int8"
    paths = (args.paths or default).split(",") + (["compile"] if args.compile else [])
    batches = [int(b) for b in args.batches.split(",")]
    model, source = _load(args.model)
    leads = model.config.in_channels
    ludb = sorted(
        (SHARED / "ludb" / "data").glob("*.hea"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0
    )
    print(
        f"{args.model} ({model.num_parameters():,} parameters, {source}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, device {device}"
        + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else "")
    )
    tmp = Path(tempfile.mkdtemp())
    files: dict[str, str] = {}
    if "onnx" in paths:
        files["onnx"] = str(tmp / "m.onnx")
        export_model(model, files["onnx"])
    if "int8" in paths:
        if not ludb:
            sys.exit("int8 needs ../shared/data/ludb for calibration")
        files["int8"] = str(tmp / "m.int8.onnx")
        windows = calibration_windows(ludb[100:132], model.info.contract)  # not the end-to-end files
        quantize_model(model, files["int8"], windows)

    results = {p: _in_child(p, args.model, files, device, batches, leads, args.seconds) for p in paths}
    base = results.get("fp32", next(iter(results.values())))[0]
    print(f"\n{'path':<10}" + "".join(f" {'batch ' + str(b):>18}" for b in batches) + f" {'peak RSS MB':>12}")
    for p, (rates, rss) in results.items():
        cells = "".join(f" {rates[b]:8.1f} ({rates[b] / base[b]:4.2f}x)  " for b in batches)
        print(f"{p:<10}{cells} {rss:12.0f}")

    if args.end_to_end and ludb and leads == 12:
        e2e = {"fp32": {}}
        if "int8" in paths:
            e2e["int8"] = {"precision": "int8", "calibration": [str(f) for f in ludb[100:132]]}
        if device == "cuda":
            e2e["fp16"] = {"precision": "fp16"}
        end_to_end(model, ludb[: args.end_to_end], e2e, args.seconds)
    if args.drift:
        drift(args.drift, [p for p in paths if p in ("bf16", "int8", "compile")])


if __name__ == "__main__":
    main()
