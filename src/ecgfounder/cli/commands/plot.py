"""``ecgfounder plot``: draw an ECG on standard paper (25 mm/s, 10 mm/mV) as PNG, PDF or SVG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("plot", help="draw an ECG on standard paper (25 mm/s, 10 mm/mV) as PNG, PDF or SVG")
    p.add_argument("file", help="ECG file")
    p.add_argument(
        "--layout",
        choices=["auto", "3x4", "3x4+rhythm", "12x1", "single"],
        default="auto",
        help="auto: 3x4+rhythm for 12 leads, single for one lead, else 12x1",
    )
    p.add_argument("--output", "-o", help="out.png, out.pdf or out.svg (default: RECORD.png)")
    p.add_argument("--lead", help="lead of the rhythm strip / single layout")
    p.add_argument("--start", type=float, default=0.0, metavar="SECONDS", help="where to start")
    p.add_argument("--rows", type=int, default=6, help="most 10 s rows for the single layout (default 6)")
    p.add_argument(
        "--preprocessed",
        action="store_true",
        help="draw the signal after the model's filter chain (still in mV)",
    )
    p.add_argument("--model", help="model whose top findings go in the header")
    p.add_argument("--top", type=int, default=3, help="findings shown with --model (default 3)")
    p.add_argument(
        "--fiducials",
        action="store_true",
        help="overlay LUDB-style delineation (.i .ii ... .v6 annotation files beside the record)",
    )
    p.add_argument(
        "--measure",
        action="store_true",
        help="HR, PR, QRS, QT/QTc and axes in the header (`ecgfounder measure`)",
    )
    p.add_argument("--dpi", type=int, default=200, help="PNG resolution (default 200)")
    p.add_argument("--fs", type=float, help="sampling rate for files that do not state it")
    p.add_argument("--leads", help="comma-separated lead names for files that do not name them")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...io import read_ecg, read_ludb_fiducials
    from ...viz import plot_ecg, save_figure

    record = read_ecg(args.file, fs=args.fs, leads=args.leads.split(",") if args.leads else None)
    findings = None
    if args.model:
        from ...infer import Predictor

        findings = Predictor(args.model, workers=0, progress=False, lead=args.lead).top_labels(
            args.file, args.top
        )
    fiducials = read_ludb_fiducials(args.file) if args.fiducials else None
    measurements = None
    if args.measure:
        from ...measurement import measure

        measurements = measure(record)
    out = Path(args.output or f"{Path(args.file).stem}.png")
    fig, geo = plot_ecg(
        record,
        layout=args.layout,
        lead=args.lead,
        start_s=args.start,
        findings=findings,
        fiducials=fiducials,
        preprocessed=args.preprocessed,
        max_rows=args.rows,
        measurements=measurements,
    )
    save_figure(fig, out, dpi=args.dpi)
    print(
        f"{out}: {geo.width_mm:.0f} x {geo.height_mm:.0f} mm, {geo.rows} rows, "
        f"{geo.speed_mm_s:g} mm/s, {geo.gain_mm_mv:g} mm/mV"
    )
    return 0
