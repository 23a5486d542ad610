"""``ecgfounder pretrain``: self-supervised pretraining (masked signal, contrastive), new or continued."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..common import add_train_options, add_verbose, data_setting, quiet_third_party, train_overrides

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "pretrain",
        help="self-supervised pretraining on unlabelled ECGs (masked signal, contrastive)",
        description="Pretrain a backbone without labels: --objective masked (hidden patches "
        "reconstructed), contrastive (two windows of a record, NT-Xent) or both. From a preset "
        "(--arch tiny: from scratch, no head) or a model (--init MODEL: continued, head kept). "
        "Writes best/last.safetensors (ordinary models, `pretraining` in their provenance) in "
        "--out; `train --init RUN/last.safetensors` fine-tunes one. Every training setting "
        "applies (--epochs, --amp, --resume, torchrun).",
    )
    p.add_argument(
        "--data",
        nargs="+",
        metavar="INPUT",
        help="ECG files, folders, globs or manifests (labels ignored), or one layout such as cinc2017:DIR",
    )
    p.add_argument("--arch", metavar="PRESET", help="architecture preset to pretrain from scratch")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/pretrain)")
    add_train_options(p)
    add_verbose(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    with quiet_third_party(args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ...errors import ECGFounderError
    from ...train.ssl import load_pretrain_config, pretrain, resume_pretrain

    overrides = train_overrides(args)
    if args.arch:
        if "init" in overrides:
            raise ECGFounderError("give --arch (from scratch) or --init (continued), not both")
        overrides["init"] = args.arch
    if args.out:
        overrides["output_dir"] = args.out
    if args.data:
        overrides.update(data_setting(args.data))
    if args.resume:
        out = resume_pretrain(args.resume, **overrides)
    else:
        cfg = load_pretrain_config(args.config, overrides)
        if not (cfg.inputs or cfg.dataset or cfg.manifest or cfg.shards):
            raise ECGFounderError(
                "no data: give --data INPUT... (unlabelled ECGs) or a layout such as cinc2017:DIR"
            )
        out = pretrain(cfg)
    print(f"run directory: {out}", file=sys.stderr)
    return 0
