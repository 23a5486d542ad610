"""``ecgfounder embed``: pooled embeddings (1024 values for the released models)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..common import archive_options, make_predictor, run_archive_command, scoring_options

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("embed", help="pooled embeddings (1024 values for the released models)")
    scoring_options(p)
    p.add_argument(
        "--output",
        "-o",
        help="FILE.npy (ids in FILE.ids.csv) or FILE.parquet (with --run-dir: .parquet, written when the "
        "run is complete; optional there)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace the output if it exists (default: refuse)"
    )
    archive_options(p)
    p.set_defaults(func=run, threshold=None, thresholds=None)
    return p


def run(args: argparse.Namespace) -> int:
    from ...errors import ECGFounderError
    from ...infer.runs import OutputExistsError, collect_inputs
    from ...infer.writers import EmbeddingWriter

    if args.run_dir:
        return run_archive_command(args, "embed")
    if not args.output:
        raise ECGFounderError("embed needs --output FILE (.npy or .parquet), or --run-dir DIR")
    if Path(args.output).exists() and not args.overwrite:
        raise OutputExistsError(f"{args.output} exists; choose another output or --overwrite")
    sources = collect_inputs(args.inputs)
    predictor = make_predictor(args, sources)
    writer = EmbeddingWriter(args.output)
    failed = 0
    try:
        for key, window, start, vec, _err in predictor.iter_embed(sources, per_window=args.per_window):
            if vec is None:
                failed += 1
                continue
            writer.write(key, window, start, vec)
    finally:
        writer.close()
    print(
        f"wrote {writer.count} embedding(s) of size {writer.dim} to {args.output}; {failed} input(s) failed",
        file=sys.stderr,
    )
    return 1 if failed else 0
