"""``ecgfounder similar``: the records of an index most similar to each ECG given."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("similar", help="the indexed records most similar to each ECG (docs/scale.md)")
    p.add_argument("inputs", nargs="+", help="ECG files or folders")
    p.add_argument("--index", required=True, help="an index folder written by ecgfounder index")
    p.add_argument("-k", type=int, default=10, help="neighbours per ECG (default 10)")
    p.add_argument("--model", help="the model to embed the ECGs with (default: the one the index names)")
    p.add_argument("--include-self", action="store_true", help="keep an ECG's own entry in its answer")
    p.add_argument("--json", action="store_true", help="one JSON object per ECG instead of a table")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...infer.runs import collect_inputs
    from ...search import load_index, similar_records

    index = load_index(args.index)
    failed = 0
    for key, table, error in similar_records(
        index, collect_inputs(args.inputs), k=args.k, model=args.model, include_self=args.include_self
    ):
        if error is not None:
            failed += 1
            print(f"error: {key}: {error}", file=sys.stderr)
            if args.json:
                print(json.dumps({"record": key, "error": error}))
            continue
        if args.json:
            print(json.dumps({"record": key, "similar": json.loads(table.to_json(orient="records"))}))
        else:
            print(f"{key}:")
            print(table.to_string(index=False))
    return 1 if failed else 0
