"""``ecgfounder explain``: which leads and moments drove a label: attributions drawn on the trace."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..common import model_options, model_overrides

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "explain", help="which leads and moments drove a label: attributions drawn on the trace"
    )
    p.add_argument("file", help="ECG file")
    p.add_argument("--label", required=True, help="label name (see `ecgfounder labels`)")
    p.add_argument(
        "--model",
        help="registered model name or model file (default: the released model that fits "
        "the file: 12-lead or single-lead)",
    )
    p.add_argument(
        "--method",
        choices=["integrated-gradients", "gradcam", "occlusion"],
        default="integrated-gradients",
        help="attribution method (default integrated-gradients)",
    )
    p.add_argument(
        "--target",
        choices=["logit", "probability"],
        default="logit",
        help="explain the logit (additive; default) or the probability",
    )
    p.add_argument("--window", type=int, help="10 s window of a long record (default: highest score)")
    p.add_argument("--lead", help="channel for a single-lead model")
    p.add_argument("--steps", type=int, default=64, help="integrated-gradients steps (default 64)")
    p.add_argument(
        "--layout",
        choices=["auto", "3x4", "3x4+rhythm", "12x1", "single"],
        default="auto",
        help="page layout of the plot (default auto: 3x4+rhythm for 12 leads)",
    )
    p.add_argument("--output", "-o", help="figure (.png/.pdf/.svg; default RECORD_METHOD.png)")
    p.add_argument("--json", metavar="FILE", help="also write the attributions as JSON")
    p.add_argument("--dpi", type=int, default=200, help="resolution of a PNG (default 200)")
    model_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...explain import explain
    from ...io import read_ecg
    from ...models import load_model
    from ...viz import plot_ecg, save_figure

    if args.model is None:
        from ...infer.runs import suggest_model

        args.model, why = suggest_model([args.file])
        print(f"model: {args.model} ({why}; --model to choose another)", file=sys.stderr)
    model = load_model(args.model, **model_overrides(args))
    record = read_ecg(args.file)
    expl = explain(
        model,
        record,
        args.label,
        method=args.method,
        window=args.window,
        lead=args.lead,
        target=args.target,
        steps=args.steps,
    )
    print(
        f"{expl.record}: {expl.method} for {expl.label!r} ({expl.target} {expl.score:.3f}"
        + (f", baseline {expl.baseline_score:.3f}" if expl.baseline_score is not None else "")
        + f"), window {expl.details['window']} from {expl.start_s:g} s"
    )
    if "completeness_gap" in expl.details:
        print(f"attributions sum to f(x) - f(baseline) within {abs(expl.details['completeness_gap']):.2e}")
    print("lead importance:")
    for lead, share in sorted(expl.lead_importance.items(), key=lambda kv: -kv[1]):
        print(f"  {lead:<5} {share:6.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(expl.to_dict(), indent=1), encoding="utf-8")
    out = Path(args.output or f"{Path(args.file).stem}_{args.method}.png")
    layout = args.layout
    if layout == "auto" and len(expl.leads) == 1:
        layout = "single"
    fig, _ = plot_ecg(
        record,
        layout=layout,
        lead=expl.details.get("record_lead"),
        start_s=expl.start_s,
        attribution=expl,
        findings=f"{expl.label} {expl.target} {expl.score:.2f}",
        findings_label="Explained",
        max_rows=1,
    )
    save_figure(fig, out, dpi=args.dpi)
    print(f"figure: {out}")
    return 0
