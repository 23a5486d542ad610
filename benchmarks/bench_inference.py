"""Model-only inference throughput per precision and batch size, with the ratio to fp32 eager
measured in the same run, and the drift of each fast path against fp32 on real records.

    .venv/bin/python benchmarks/bench_inference.py [--model ecgfounder-12lead] [--seconds 5]
        [--batches 1,16,64] [--onnx] [--drift 300]

The released architecture with random weights is used when the weights are not available (the
speed does not depend on the weights). Drift: the bundled single-lead model scored in fp32 and in
each fast path on held-out CinC 2017 records: the largest probability difference and the change
of the AF AUROC.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def throughput(fn, batch: int, leads: int, seconds: float) -> float:
    x = torch.randn(batch, leads, 5000)
    fn(x)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        fn(x)
        n += batch
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ecgfounder-12lead")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--onnx", action="store_true", help="also ONNX Runtime (exports the model first)")
    ap.add_argument("--int8", action="store_true",
                    help="also ONNX Runtime on the export quantised with quantize_dynamic (int8 weights)")
    ap.add_argument("--drift", type=int, default=300, help="held-out CinC 2017 records for the drift check")
    args = ap.parse_args()
    import ecgfounder
    from ecgfounder.errors import WeightsUnavailableError

    try:
        model = ecgfounder.load_model(args.model, local_files_only=True)
        source = "released weights"
    except (WeightsUnavailableError, ecgfounder.CheckpointError, KeyError):
        torch.manual_seed(0)
        model = ecgfounder.create_model(args.model).eval()
        source = "random weights"
    leads = model.config.in_channels
    print(f"{args.model} ({model.num_parameters():,} parameters, {source}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs")

    def eager(x):
        with torch.inference_mode():
            return model(x)

    def bf16(x):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x)

    paths = {"fp32 eager": eager, "bf16 autocast": bf16}
    if args.onnx or args.int8:
        from ecgfounder.export import OnnxModel, export_model

        tmp = Path(tempfile.mkdtemp()) / "m.onnx"
        export_model(model, tmp)
        runner = OnnxModel(tmp)
        paths["onnxruntime fp32"] = lambda x: runner.run(x.numpy())
        if args.int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(tmp), str(tmp.with_suffix(".int8.onnx")), weight_type=QuantType.QInt8)
            q = OnnxModel(tmp.with_suffix(".int8.onnx"))
            paths["onnxruntime int8"] = lambda x: q.run(x.numpy())
            probe = torch.randn(4, leads, 5000).numpy()
            print(f"int8 vs fp32 logits on random input: max |diff| "
                  f"{np.abs(q.run(probe)[0] - runner.run(probe)[0]).max():.3f}")
    print(f"{'path':<18} {'batch':>5} {'ECG/s':>9} {'vs fp32':>8}")
    for batch in (int(b) for b in args.batches.split(",")):
        base = None
        for name, fn in paths.items():
            rate = throughput(fn, batch, leads, args.seconds)
            base = base or rate
            print(f"{name:<18} {batch:>5} {rate:9.1f} {rate / base:7.2f}x")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    if args.drift:
        from ecgfounder.data import cinc2017_manifest
        from ecgfounder.eval import auroc

        data = ROOT.parent / "shared" / "data" / "cinc2017-dev"
        if not data.is_dir():
            return
        man = cinc2017_manifest(data, seed=0, val_fraction=0.1, test_fraction=0.2)
        test = man.indices("test")[: args.drift]
        files = [man.paths[i] for i in test]
        af = man.y[test] == 1
        ref = ecgfounder.Predictor("cinc2017-rhythm-tiny", precision="fp32", progress=False).predict(files)
        got = ecgfounder.Predictor("cinc2017-rhythm-tiny", precision="bf16", progress=False).predict(files)
        labels = ["normal", "AF", "other", "noisy"]
        diff = float(np.abs(ref[labels].to_numpy(float) - got[labels].to_numpy(float)).max())
        a0, a1 = auroc(af, ref["AF"].to_numpy()), auroc(af, got["AF"].to_numpy())
        print(f"drift bf16 vs fp32 on {len(files)} held-out CinC 2017 records (bundled model): "
              f"max |prob diff| {diff:.4f}, AF AUROC {a0:.4f} -> {a1:.4f} ({a1 - a0:+.4f})")


if __name__ == "__main__":
    main()
