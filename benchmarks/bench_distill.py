"""Student architectures against the released one, in one run: parameters, FLOPs per 10 s window,
and ECG/s on this CPU (PyTorch fp32, bf16 where the CPU has native bf16, ONNX Runtime fp32 and int8).

    .venv/bin/python benchmarks/bench_distill.py [--leads 1] [--seconds 3] [--batch 32]
        [--student runs/X/best.safetensors ...]

Windows are random normal (speed does not depend on the values; int8 calibration uses them too).
Architectures: the presets nano, micro, tiny, small and base (= the released ECGFounder
architecture, random weights), plus any student files given.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--presets", default="nano,micro,tiny,small,base")
    ap.add_argument("--student", nargs="*", default=[])
    ap.add_argument("--no-onnx", action="store_true")
    args = ap.parse_args()

    from ecgfounder import load_model
    from ecgfounder.contract import STANDARD_12_LEADS
    from ecgfounder.models import create_model
    from ecgfounder.train.distill import count_flops, native_bf16, throughput

    leads = ("I",) if args.leads == 1 else STANDARD_12_LEADS[: args.leads]
    x = torch.from_numpy(
        np.random.default_rng(0).standard_normal((args.batch, len(leads), 5000)).astype(np.float32)
    )
    models = [
        (name, create_model(name, in_channels=len(leads), n_classes=150 if name == "base" else 4).eval())
        for name in args.presets.split(",")
    ]
    models += [(Path(p).parent.name, load_model(p)) for p in args.student]
    print(
        f"{platform.processor() or platform.machine()}; {os.cpu_count()} CPU(s); torch threads "
        f"{torch.get_num_threads()}; native bf16: {native_bf16()}; batch {args.batch} x {len(leads)} "
        f"lead(s) x 5000"
    )
    onnx = not args.no_onnx
    if onnx:
        try:
            from ecgfounder.export import OnnxModel, export_model, quantize_model
        except ImportError:
            onnx = False
    rows = []
    for name, m in models:
        row = {
            "model": name,
            "params": m.num_parameters(False),
            "mflop": count_flops(m, len(leads), 5000) / 1e6,
            "fp32": throughput(m, x, args.seconds),
        }
        if native_bf16():
            row["bf16"] = throughput(m, x, args.seconds, bf16=True)
        if onnx:
            with tempfile.TemporaryDirectory() as tmp:

                def rate(path: Path) -> float:
                    import time

                    om = OnnxModel(path)
                    om.run(x.numpy())
                    n, t0 = 0, time.perf_counter()
                    while time.perf_counter() - t0 < args.seconds or n == 0:
                        om.run(x.numpy())
                        n += len(x)
                    return n / (time.perf_counter() - t0)

                export_model(m, Path(tmp) / "m.onnx")
                row["onnx"] = rate(Path(tmp) / "m.onnx")
                quantize_model(m, Path(tmp) / "m8.onnx", x.numpy()[:16])
                row["onnx_int8"] = rate(Path(tmp) / "m8.onnx")
        rows.append(row)
        print(f"  {name}: done", flush=True)
    base = next((r["fp32"] for r in rows if r["model"] == "base"), None)
    cols = [c for c in ("fp32", "bf16", "onnx", "onnx_int8") if c in rows[0]]
    print(
        "| model | parameters | MFLOP/window | "
        + " | ".join(f"ECG/s {c}" for c in cols)
        + (" | fastest vs base fp32 |" if base else " |")
    )
    print("| --- | --- | --- |" + " --- |" * len(cols) + (" --- |" if base else ""))
    for r in rows:
        line = f"| {r['model']} | {r['params']:,} | {r['mflop']:.1f} | " + " | ".join(
            f"{r[c]:.0f}" for c in cols
        )
        if base:
            line += f" | {max(r[c] for c in cols) / base:.1f}x"
        print(line + " |")


if __name__ == "__main__":
    main()
