"""``ecgfounder monitor``: a long recording (Holter, patch, watch) to windows, episodes, burden and
heart rate."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parser", "run"]

RULE_OPTIONS = ("on", "off", "smooth_windows", "min_duration_s", "merge_gap_s", "rr_weight", "rr_cv_center")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "monitor", help="long recordings: rhythm episodes, burden and heart rate, read in chunks"
    )
    p.add_argument("record", help="the recording (WFDB and EDF/BDF are read in chunks; other formats whole)")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for windows.csv, episodes.csv, beats.csv, summary.json, report.pdf",
    )
    p.add_argument(
        "--model",
        help="registered model name or model file (default: the released model that fits the record)",
    )
    p.add_argument("--lead", help="channel to analyse with a single-lead model")
    p.add_argument(
        "--fhir",
        action="store_true",
        help="also write bundle.json: an HL7 FHIR R4 Bundle of the burden, episodes and heart rate "
        "(docs/interop.md)",
    )
    p.add_argument("--subject", metavar="REFERENCE", help="with --fhir: the subject (e.g. Patient/123)")
    p.add_argument("--stride", type=float, default=5.0, metavar="SECONDS", help="window step (default 5)")
    p.add_argument(
        "--chunk",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="seconds read at a time (default 600; memory does not grow with the record)",
    )
    p.add_argument(
        "--labels", help="comma-separated labels to find episodes of (default: all but normal and noise)"
    )
    # the episode rules: an option left out comes from the model's own rules (the bundled rhythm
    # models': chosen on validation records) or EpisodeRules' defaults, written here as numbers so
    # that `--help` imports nothing (tests/test_monitor.py checks they are EpisodeRules')
    for flag, dest, kind, meta, text, default in (
        ("--on", "on", float, "P", "probability that opens an episode", "0.5"),
        ("--off", "off", float, "P", "probability below which it closes", "0.35"),
        ("--smooth", "smooth_windows", int, "WINDOWS", "running median width", "3"),
        ("--min-duration", "min_duration_s", float, "SECONDS", "shortest episode kept", "30"),
        ("--merge-gap", "merge_gap_s", float, "SECONDS", "episodes closer than this are joined", "30"),
        ("--rr-weight", "rr_weight", float, "W", "weight of the RR irregularity in the AF score", "0"),
        (
            "--rr-cv-center",
            "rr_cv_center",
            float,
            "CV",
            "RR coefficient of variation counted half-way irregular",
            "0.1",
        ),
    ):
        p.add_argument(
            flag,
            dest=dest,
            type=kind,
            metavar=meta,
            help=f"{text} (default: the model's own rules, else {default})",
        )
    p.add_argument(
        "--pause", type=float, default=2.0, metavar="SECONDS", help="pauses reported from (default 2.0)"
    )
    p.add_argument("--brady", type=float, default=50.0, metavar="BPM", help="bradycardia below (default 50)")
    p.add_argument(
        "--tachy", type=float, default=100.0, metavar="BPM", help="tachycardia above (default 100)"
    )
    p.add_argument("--paper", choices=["a4", "letter"], default="a4", help="report page size (default a4)")
    p.add_argument(
        "--no-heart-rate", action="store_true", help="skip the beats (QRS detection, Holter summary)"
    )
    p.add_argument("--no-report", action="store_true", help="no report.pdf")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...monitor import HolterRules, episode_rules_for, monitor

    try:
        given = {k: getattr(args, k) for k in RULE_OPTIONS if getattr(args, k) is not None}
        episode_rules_for(args.model, given)  # checked now: a clear error, not a traceback
        holter = HolterRules(pause_s=args.pause, brady_bpm=args.brady, tachy_bpm=args.tachy)
    except ValueError as exc:
        from ...errors import ECGFounderError

        raise ECGFounderError(str(exc)) from None
    result = monitor(
        args.record,
        args.model,
        lead=args.lead,
        stride_s=args.stride,
        chunk_s=args.chunk,
        rules=given,
        labels=args.labels.split(",") if args.labels else None,
        out_dir=args.out,
        progress=False if args.no_progress else None,
        heart_rate=not args.no_heart_rate,
        report=not args.no_report,
        holter_rules=holter,
        paper=args.paper,
    )
    s = result.summary
    if args.fhir:
        from pathlib import Path

        from ...interop.fhir import monitor_bundle

        bundle = monitor_bundle(s, result.episodes, subject=args.subject)
        (Path(args.out) / "bundle.json").write_text(json.dumps(bundle, indent=1))
    print(
        f"{s['record']}: {s['duration_s'] / 3600:.2f} h, analysed {s['analysed_s'] / 3600:.2f} h, "
        f"excluded {s['excluded_s']:.0f} s",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "burden": s["burden"],
                "episodes": s["episodes"],
                "heart_rate": {k: v for k, v in s["heart_rate"].items() if k != "per_minute"},
                "beats": (s.get("holter") or {}).get("beats"),
                "pauses": ((s.get("holter") or {}).get("pauses") or {}).get("count"),
            }
        )
    )
    print(
        f"wrote windows.csv, episodes.csv{'' if args.no_heart_rate else ', beats.csv'}, summary.json"
        f"{'' if args.no_report else ', report.pdf'}"
        f"{', bundle.json' if args.fhir else ''} to "
        f"{args.out}",
        file=sys.stderr,
    )
    return 0
