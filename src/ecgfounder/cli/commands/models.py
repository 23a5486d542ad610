"""``ecgfounder models``: list registered models and architecture presets."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("models", help="list registered models and architecture presets")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...models import PRESETS, get_model_entry, list_models

    rows = [get_model_entry(name).summary() for name in list_models()]
    if args.json:
        print(json.dumps({"models": rows, "presets": {k: v.to_dict() for k, v in PRESETS.items()}}, indent=2))
        return 0
    print("Registered models:")
    for row in rows:
        c = row["contract"]
        outputs = f"{row['n_labels']:>4} labels" if row["n_labels"] else " encoder"
        print(
            f"  {row['name']:<20} {row['arch']:<6} {outputs}  "
            f"{len(c['leads'])} lead{'s' if len(c['leads']) != 1 else ''} {' '.join(c['leads'])}, "
            f"{c['fs']:g} Hz, "
            f"{c['n_samples']} samples, {c['units']}, {c['preprocessing']}"
        )
        weights = row["weights"] or "a file you load (see `ecgfounder models --json`, description)"
        print(f"  {'':<20} {row['architecture']}; weights: {weights}")
    print("Architecture presets (pretrained=False): " + ", ".join(PRESETS))
    return 0
