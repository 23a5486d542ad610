"""``ecgfounder adapt``: adapt a model to a new site or device from unlabelled records."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..common import add_verbose, quiet_third_party

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from ...train.config import ADAPT_METHODS as METHODS
    from ...train.config import DEFAULT_ADAPT_METHOD as DEFAULT_METHOD

    p = sub.add_parser(
        "adapt",
        help="adapt a model to a new site or device without its labels",
        description="Unsupervised adaptation on unlabelled records of the new domain: "
        f"{', '.join(METHODS)} (several joined by '+', applied in order; default "
        f"{DEFAULT_METHOD}). The result is an ordinary model file with the same contract, labels "
        "and thresholds, the adaptation in its provenance. See docs/adapt.md for what each "
        "method gains and costs.",
    )
    p.add_argument("model", help="registered model name or model file")
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="INPUT",
        help="unlabelled ECGs of the new domain: files, folders, globs, manifests, URLs",
    )
    p.add_argument(
        "--out", required=True, metavar="FILE.safetensors", help="where to write the adapted model"
    )
    p.add_argument("--method", default=DEFAULT_METHOD, help=f"{', '.join(METHODS)}, or several joined by '+'")
    p.add_argument(
        "--source",
        nargs="+",
        metavar="INPUT",
        help="records of the training domain (align; prior when the model carries no output prior)",
    )
    p.add_argument("--epochs", type=int, default=10, help="tent and ssl: passes over the target records")
    p.add_argument("--lr", type=float, default=1e-3, help="tent and ssl learning rate")
    p.add_argument("--batch-size", type=int, default=32, help="windows per step (tent, ssl)")
    p.add_argument(
        "--tent-params",
        default="input",
        choices=("input", "bias", "last"),
        help="tent: the first convolution, every bias, or the last stage",
    )
    p.add_argument(
        "--prior",
        default="conservative",
        choices=("conservative", "point"),
        help="prior: move each class by its bootstrap interval's end nearest zero, or by the estimate",
    )
    p.add_argument("--align", default="meanvar", choices=("meanvar", "coral"), help="align: how")
    p.add_argument(
        "--objective",
        default="contrastive",
        choices=("masked", "contrastive", "both"),
        help="ssl: the self-supervised objective",
    )
    p.add_argument("--lead", help="the record channel fed to a single-lead model")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample order and the bootstrap")
    p.add_argument("--workers", type=int, default=1, help="processes reading files")
    p.add_argument("--cache-dir", default=".ecgfounder-cache", help="where prepared windows are cached")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if available)")
    p.add_argument("--progress", action="store_true", help="progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refuse)")
    add_verbose(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    with quiet_third_party(args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ...train.adapt import AdaptOptions, adapt

    opts = AdaptOptions(
        method=args.method,
        source=args.source,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        tent_params=args.tent_params,
        align=args.align,
        prior=args.prior,
        objective=args.objective,
        seed=args.seed,
        lead=args.lead,
        workers=args.workers,
        cache_dir=args.cache_dir,
        device=args.device,
        progress=args.progress,
        log=lambda msg: print(msg, file=sys.stderr),
    )
    opts.steps()  # a bad method is named before any file is read
    out = adapt(args.model, args.data, args.out, opts, overwrite=args.overwrite)
    print(f"adapted model: {out}", file=sys.stderr)
    return 0
