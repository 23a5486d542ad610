"""``ecgfounder prepare``: preprocess a data set once into shards for streamed (multi-node) training."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "prepare", help="preprocess a data set once into shards for streamed (multi-node) training"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="manifest CSV (path, labels, split)")
    src.add_argument("--dataset", help="cinc2017:<folder>, cinc2021:<folder> or ptbxl[/group]:<folder>")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--task",
        default="multiclass",
        choices=["multiclass", "multilabel", "regression"],
        help="the labels' task (default multiclass)",
    )
    p.add_argument("--label-columns", help="comma-separated label columns of the manifest")
    p.add_argument("--model", help="take the input contract (leads, rate, length) from this model")
    p.add_argument("--leads", help="comma-separated leads (default: the 12 standard leads)")
    p.add_argument("--lead", help="channel to use for a single-lead contract")
    p.add_argument("--shard-records", type=int, default=1024, help="records per shard file (default 1024)")
    p.add_argument("--stride", type=float, default=5.0, help="window step in seconds (default 5)")
    p.add_argument("--workers", type=int, help="reading processes (default 1)")
    p.add_argument("--limit", type=int, help="a stratified subset of this many records (quick runs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn splits and the subset (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...contract import STANDARD_12_LEADS, InputContract
    from ...data.shards import write_shards
    from ...train import build_manifest
    from ...train.config import load_config

    cfg = load_config(
        None,
        {
            "manifest": args.manifest,
            "dataset": args.dataset,
            "task": args.task,
            "label_columns": args.label_columns,
            "limit": args.limit,
            "seed": args.seed,
        },
    )
    man = build_manifest(cfg)
    if args.model:
        from ...models import load_model

        contract = load_model(args.model).info.contract
    else:
        leads = tuple(args.leads.split(",")) if args.leads else STANDARD_12_LEADS
        contract = InputContract(leads=leads)
    out = write_shards(
        man,
        contract,
        args.out,
        shard_records=args.shard_records,
        stride_s=args.stride,
        lead=args.lead,
        workers=args.workers if args.workers is not None else 1,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    index = json.loads((out / "index.json").read_text())
    print(
        f"wrote {len(index['shards'])} shard(s) to {out}: {sum(s['records'] for s in index['shards'])} "
        f"records, {sum(s['windows'] for s in index['shards'])} windows, "
        f"{index['unusable_records']} unusable",
        file=sys.stderr,
    )
    return 0
