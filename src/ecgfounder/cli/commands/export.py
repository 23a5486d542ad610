"""``ecgfounder export``: export a model to ONNX, TorchScript or safetensors, with a parity check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ...errors import ECGFounderError
from ..common import add_verbose, model_options, model_overrides, quiet_third_party

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export", help="export a model to ONNX, TorchScript or safetensors, with a parity check"
    )
    p.add_argument("model", help="registered model name or model file")
    p.add_argument(
        "--output", "-o", required=True, help="FILE.onnx, FILE.pt (TorchScript) or FILE.safetensors"
    )
    p.add_argument(
        "--format",
        choices=["onnx", "torchscript", "safetensors"],
        help="the file type (default: from the suffix: .onnx, .pt, .safetensors)",
    )
    p.add_argument("--atol", type=float, default=1e-4, help="parity tolerance against PyTorch (default 1e-4)")
    p.add_argument("--no-check", action="store_true", help="skip the parity check")
    p.add_argument(
        "--int8",
        action="store_true",
        help="ONNX only: static int8 quantisation (ONNX Runtime) calibrated on --calibration",
    )
    p.add_argument("--calibration", nargs="+", metavar="INPUT", help="ECG files/folders for --int8")
    p.add_argument("--lead", help="channel to calibrate a single-lead model on")
    model_options(p)
    add_verbose(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    with quiet_third_party(args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ...export import export_model
    from ...models import load_model

    model = load_model(args.model, **model_overrides(args))
    if args.int8:
        from ...export import export_int8

        if not args.calibration:
            raise ECGFounderError(
                "--int8 needs --calibration ECG files or folders (a few dozen records "
                "like the ones the model will score)"
            )
        if (args.format or Path(args.output).suffix.lower().lstrip(".")) != "onnx":
            raise ECGFounderError("--int8 writes ONNX: give --output FILE.onnx")
        summary = export_int8(model, args.output, args.calibration, lead=args.lead)
    else:
        summary = export_model(model, args.output, args.format, check=not args.no_check, atol=args.atol)
    print(json.dumps(summary, indent=2))
    return 0
