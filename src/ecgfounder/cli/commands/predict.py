"""``ecgfounder predict``: probabilities per label (named) for ECG files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ...errors import ECGFounderError
from ..common import archive_options, make_predictor, run_archive_command, scoring_options

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="probabilities per label (named) for ECG files")
    scoring_options(p)
    p.add_argument("--output", "-o", help="output file (default: CSV on stdout)")
    p.add_argument(
        "--format",
        choices=["csv", "jsonl", "parquet", "fhir"],
        help="output format (default: from the file name, else csv); fhir: an HL7 FHIR R4 Bundle per "
        "record, one a line (NDJSON; docs/interop.md)",
    )
    p.add_argument(
        "--subject",
        metavar="REFERENCE",
        help="with --format fhir: the subject every resource refers to (e.g. Patient/123); never read "
        "from the file",
    )
    p.add_argument(
        "--aggregate",
        choices=["mean", "max", "logit"],
        default=None,
        help="how window probabilities make a record's: mean, max, or logit (mean window logit: "
        "the normalised geometric mean for softmax models); default the model's own, else mean",
    )
    p.add_argument("--threshold", type=float, help="one decision threshold for every label")
    p.add_argument(
        "--thresholds",
        metavar="FILE",
        help="per-label thresholds: JSON {label: threshold} or CSV label,threshold",
    )
    p.add_argument(
        "--conformal",
        metavar="FILE",
        help="conformal sets from `ecgfounder conformal`: adds conformal_set and abstain per record",
    )
    p.add_argument(
        "--measure",
        action="store_true",
        help="add the clinical measurements of each record (hr_bpm, pr_ms, qrs_ms, qt_ms, QTc, axes, "
        "measure_flags; see `ecgfounder measure`)",
    )
    p.add_argument(
        "--no-artifact-checks",
        action="store_true",
        help="skip the noise, mains, wander, motion and limb-reversal flags (about 3 ms per 12-lead record)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists (default: refuse)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: keep the records already in OUTPUT.partial, score the rest",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="score the K-th of N disjoint parts of the inputs (1 <= K <= N) into OUTPUT.partKofN.EXT; "
        "under torchrun the rank and world size choose the part",
    )
    archive_options(p)
    p.set_defaults(func=run)
    return p


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
        if not 1 <= k <= n:
            raise ValueError
    except ValueError:
        raise ECGFounderError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/8") from None
    return k, n


def run(args: argparse.Namespace) -> int:
    from ...infer.runs import check_output, collect_inputs, predict_to_file, shard_from_env
    from ...infer.writers import TableWriter, table_format

    if args.format == "fhir":
        if args.run_dir:
            raise ECGFounderError("--format fhir writes one Bundle per record: no --run-dir")
        return _run_fhir(args)
    if args.run_dir:
        return run_archive_command(args, "predict")
    shard = parse_shard(args.shard) or shard_from_env()
    if not args.output and (args.resume or shard):
        raise ECGFounderError("--resume and --shard (or torchrun) need --output FILE")
    if args.output:  # refused before the model loads
        check_output(args.output, fmt=args.format, overwrite=args.overwrite, resume=args.resume, shard=shard)
    sources = collect_inputs(args.inputs)
    predictor = make_predictor(args, sources)
    if args.output:
        summary = predict_to_file(
            predictor,
            sources,
            args.output,
            fmt=args.format,
            per_window=args.per_window,
            overwrite=args.overwrite,
            resume=args.resume,
            shard=shard,
        )
        kept = f", {summary.resumed} kept from the interrupted run" if summary.resumed else ""
        print(
            f"wrote {summary.rows} row(s) for {summary.records} record(s) to {summary.output}{kept}; "
            f"{summary.failed} input(s) failed",
            file=sys.stderr,
        )
        return 1 if summary.failed else 0
    writer = TableWriter(None, table_format(None, args.format))
    failed = 0
    try:
        for row in predictor.iter_predict(sources, per_window=args.per_window):
            failed += bool(row["error"])
            writer.write(row)
    finally:
        writer.close()
    return 1 if failed else 0


def _run_fhir(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ...infer.runs import OutputExistsError, collect_inputs
    from ...interop.fhir import write_bundles

    if args.resume or args.shard or args.per_window:
        raise ECGFounderError(
            "--format fhir writes one Bundle per record: no --resume, --shard or --per-window"
        )
    if args.output and Path(args.output).exists() and not args.overwrite:
        raise OutputExistsError(f"{args.output} exists; choose another output, or --overwrite")
    sources = collect_inputs(args.inputs)
    predictor = make_predictor(args, sources)
    written, failed = write_bundles(predictor, sources, args.output or sys.stdout, subject=args.subject)
    if args.output:
        print(f"wrote {written} FHIR Bundle(s) to {args.output}; {failed} input(s) failed", file=sys.stderr)
    return 1 if failed else 0
