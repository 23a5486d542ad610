"""The ``ecgfounder`` command line.

Each sub-command lives in a function ``cmd_<name>``; heavy imports happen inside them so that
``ecgfounder --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..errors import ECGFounderError

__all__ = ["main", "build_parser"]


def _model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {} if args.use_bn is None else {"use_bn": args.use_bn}


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import PRESETS, get_model_entry, list_models

    rows = [get_model_entry(name).summary() for name in list_models()]
    if args.json:
        print(json.dumps({"models": rows, "presets": {k: v.to_dict() for k, v in PRESETS.items()}},
                         indent=2))
        return 0
    print("Registered models:")
    for row in rows:
        c = row["contract"]
        print(f"  {row['name']:<20} {row['arch']:<6} {row['n_labels']:>4} labels  "
              f"{len(c['leads'])} lead(s) {' '.join(c['leads'])}, {c['fs']:g} Hz, "
              f"{c['n_samples']} samples, {c['units']}, {c['preprocessing']}")
        print(f"  {'':<20} weights: {row['weights']}")
    print("Architecture presets (pretrained=False): " + ", ".join(PRESETS))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..models import load_model

    model = load_model(args.source, template=args.template, **_model_overrides(args))
    info = model.info
    out = {
        "name": info.name,
        "config": model.config.to_dict(),
        "trainable_parameters": model.num_parameters(),
        "contract": info.contract.to_dict() if info.contract else None,
        "n_labels": len(info.labels) if info.labels else None,
        "thresholds": info.thresholds is not None,
        "license": info.license,
        "provenance": info.provenance,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"model:       {info.name or '(unregistered)'}")
    print(f"parameters:  {out['trainable_parameters']:,} trainable")
    print(f"config:      {json.dumps(out['config'])}")
    print(f"contract:    {info.contract.describe() if info.contract else 'unknown'}")
    print(f"labels:      {out['n_labels'] or 'unknown'}")
    for key, value in info.provenance.items():
        print(f"{key + ':':<12} {value}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from ..models import get_model_entry, load_model
    from ..models.registry import is_registered

    if is_registered(args.model):
        labels = get_model_entry(args.model).labels
    else:
        labels = load_model(args.model).info.labels
    if not labels:
        print(f"error: {args.model}: the model carries no label names", file=sys.stderr)
        return 2
    for i, label in enumerate(labels):
        print(f"{i}\t{label}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from ..models import load_model, save_model

    model = load_model(args.source, template=args.template, **_model_overrides(args))
    path = save_model(model, args.output, name=args.name)
    print(f"wrote {path} ({model.num_parameters():,} parameters, "
          f"{'contract + labels' if model.info.labels else 'no labels'})")
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    from ..errors import ECGInputError
    from ..io import read_ecg
    from ..signal import check_quality

    failed = 0
    for path in args.files:
        try:
            rec = check_quality(read_ecg(path, fs=args.fs, leads=args.leads.split(",") if args.leads else None,
                                         units=args.units))
        except ECGInputError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"record": str(path), "error": exc.reason}))
            continue
        summary = {"record": str(path), "id": rec.record_id, "format": rec.meta.get("format"),
                   "leads": list(rec.leads), "fs": rec.fs, "samples": rec.n_samples,
                   "duration_s": round(rec.duration_s, 3), "age": rec.age, "sex": rec.sex,
                   "diagnoses": list(rec.diagnoses), "codes": list(rec.codes), "flags": rec.flags,
                   "notes": rec.notes}
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"{path}: {rec.n_leads} leads [{' '.join(rec.leads)}], {rec.fs:g} Hz, "
                  f"{rec.duration_s:.2f} s" + (f", age {rec.age:g}" if rec.age is not None else "")
                  + (f", sex {rec.sex}" if rec.sex else ""))
            for label, items in (("diagnoses", rec.diagnoses), ("codes", rec.codes),
                                 ("flags", rec.flags), ("notes", rec.notes)):
                if items:
                    print(f"  {label}: {'; '.join(items)}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecgfounder",
        description="ECGFounder ECG foundation model: read ECG files; load, inspect and convert models.",
    )
    parser.add_argument("--version", action="version", version=f"ecgfounder {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list registered models and architecture presets")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--template", metavar="NAME",
                       help="registered model whose input contract and labels apply to a file "
                            "without metadata")
        bn = p.add_mutually_exclusive_group()
        bn.add_argument("--use-bn", dest="use_bn", action="store_true", default=None,
                        help="force BatchNorm on (default: inferred from the file)")
        bn.add_argument("--no-use-bn", dest="use_bn", action="store_false",
                        help="force BatchNorm off")

    p = sub.add_parser("read", help="read ECG files and show leads, rate, metadata and quality flags")
    p.add_argument("files", nargs="+", help="ECG files (WFDB .hea, EDF/BDF, XML, DICOM, CSV, .npy/.npz, HDF5)")
    p.add_argument("--fs", type=float, help="sampling rate, for files that do not state it (CSV, .npy)")
    p.add_argument("--leads", help="comma-separated lead names, for files that do not name them")
    p.add_argument("--units", help="signal units for files that do not state them (default mV)")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("info", help="load a model strictly and describe it")
    p.add_argument("source", help="registered model name or model file (.pth, .pt, .safetensors)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    model_options(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("labels", help="print a model's output index and label name")
    p.add_argument("model", nargs="?", default="ecgfounder-12lead",
                   help="registered model name or model file (default: ecgfounder-12lead)")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("convert", help="convert an official .pth to our safetensors format "
                                       "(weights + architecture + contract + labels)")
    p.add_argument("source", help="model file or registered model name")
    p.add_argument("output", help="output .safetensors file")
    p.add_argument("--name", help="model name stored in the file")
    model_options(p)
    p.set_defaults(func=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except ECGFounderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
