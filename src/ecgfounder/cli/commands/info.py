"""``ecgfounder info``: load a model strictly and describe it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..common import model_options, model_overrides

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="load a model strictly and describe it")
    p.add_argument(
        "source",
        help="registered model name or model file (.pth, .pt, .safetensors, or an ONNX or "
        "TorchScript export)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    model_options(p)
    p.set_defaults(func=run)
    return p


def _exported(source: str) -> Any:
    """The ONNX or TorchScript export at ``source`` (judged by suffix, then content), else None."""
    from pathlib import Path

    from ...models.checkpoint import is_torchscript

    if source.lower().endswith(".onnx"):
        from ...export import OnnxModel

        return OnnxModel(source)
    if Path(source).is_file() and is_torchscript(source):
        from ...export import TorchScriptModel

        return TorchScriptModel(source)
    return None


def run(args: argparse.Namespace) -> int:
    from ...models import load_model

    exported = _exported(args.source)
    model = (
        exported
        if exported is not None
        else load_model(args.source, template=args.template, **model_overrides(args))
    )
    info = model.info
    out = {
        "name": info.name,
        "format": info.provenance.get("file_format", "ecgfounder") if exported is not None else "weights",
        "config": model.config.to_dict(),
        "trainable_parameters": model.num_parameters() if exported is None else None,
        "contract": info.contract.to_dict() if info.contract else None,
        "n_labels": len(info.labels) if info.labels else None,
        "thresholds": info.thresholds is not None,
        "license": info.license,
        "provenance": info.provenance,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"model:       {info.name or '(unregistered)'}")
    if exported is None:
        print(f"parameters:  {out['trainable_parameters']:,} trainable")
    else:
        print(f"format:      {out['format']} export (runs as exported: predict, embed, serve)")
    print(f"config:      {json.dumps(out['config'])}")
    print(f"contract:    {info.contract.describe() if info.contract else 'unknown'}")
    print(f"labels:      {out['n_labels'] or 'unknown'}")
    for key, value in info.provenance.items():
        print(f"{key + ':':<12} {value}")
    return 0
