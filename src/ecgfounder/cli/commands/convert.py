"""``ecgfounder convert``: convert an official .pth to our safetensors format (weights, architecture,
contract, labels)."""

from __future__ import annotations

import argparse
from typing import Any

from ..common import model_options, model_overrides

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert",
        help="convert an official .pth to our safetensors format "
        "(weights + architecture + contract + labels)",
    )
    p.add_argument("source", help="model file or registered model name")
    p.add_argument("output", help="output .safetensors file")
    p.add_argument("--name", help="model name stored in the file")
    model_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...models import load_model, save_model

    model = load_model(args.source, template=args.template, **model_overrides(args))
    path = save_model(model, args.output, name=args.name)
    print(
        f"wrote {path} ({model.num_parameters():,} parameters, "
        f"{'contract + labels' if model.info.labels else 'no labels'})"
    )
    return 0
