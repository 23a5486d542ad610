"""``ecgfounder labels``: print a model's output index and label name."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("labels", help="print a model's output index and label name")
    p.add_argument(
        "model",
        nargs="?",
        default="ecgfounder-12lead",
        help="registered model name or model file (default: ecgfounder-12lead)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...models import get_model_entry, load_model
    from ...models.registry import is_registered

    if is_registered(args.model):
        labels = get_model_entry(args.model).labels
    else:
        labels = load_model(args.model).info.labels
    if not labels:
        print(f"error: {args.model}: the model carries no label names", file=sys.stderr)
        return 2
    for i, label in enumerate(labels):
        print(f"{i}\t{label}")
    return 0
