"""The ``ecgfounder`` command line.

Each sub-command lives in a function ``cmd_<name>``; heavy imports happen inside them so that
``ecgfounder --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
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


def _predictor(args: argparse.Namespace) -> Any:
    from ..infer import Predictor
    from ..models import load_model

    def on_error(key: str, reason: str) -> None:
        print(f"error: {key}: {reason}", file=sys.stderr)

    model = args.model if str(args.model).lower().endswith(".onnx") else load_model(args.model, **_model_overrides(args))
    thresholds: Any = args.threshold
    if args.thresholds:
        thresholds = _read_thresholds(args.thresholds)
    return Predictor(model, device=args.device, precision=args.precision, batch_size=args.batch_size,
                     workers=args.workers, lead=args.lead, stride_s=args.stride,
                     aggregate=getattr(args, "aggregate", "mean"), thresholds=thresholds,
                     progress=False if args.no_progress else None, fs=args.fs,
                     leads=args.leads.split(",") if args.leads else None, units=args.units,
                     on_error=on_error, calibration=args.calibration, compile=args.compile)


def _read_thresholds(path: str) -> dict[str, float]:
    """A JSON object label -> threshold, or a CSV with columns label,threshold."""
    import csv

    from ..errors import ECGFounderError

    text = open(path, encoding="utf-8").read()
    try:
        if path.lower().endswith(".json"):
            return {str(k): float(v) for k, v in json.loads(text).items()}
        rows = list(csv.DictReader(text.splitlines()))
        return {r["label"]: float(r["threshold"]) for r in rows}
    except (ValueError, KeyError, AttributeError) as exc:
        raise ECGFounderError(f"{path}: cannot read thresholds ({exc}); expected JSON "
                              "{label: threshold} or CSV label,threshold") from None


def cmd_predict(args: argparse.Namespace) -> int:
    from ..infer.writers import TableWriter, table_format

    predictor = _predictor(args)
    writer = TableWriter(args.output, table_format(args.output, args.format))
    failed = 0
    try:
        for row in predictor.iter_predict(args.inputs, per_window=args.per_window):
            failed += bool(row["error"])
            writer.write(row)
    finally:
        writer.close()
    if args.output:
        print(f"wrote {writer.count} row(s) to {args.output}; {failed} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_embed(args: argparse.Namespace) -> int:
    from ..infer.writers import EmbeddingWriter

    predictor = _predictor(args)
    writer = EmbeddingWriter(args.output)
    failed = 0
    try:
        for key, window, start, vec, err in predictor.iter_embed(args.inputs, per_window=args.per_window):
            if vec is None:
                failed += 1
                continue
            writer.write(key, window, start, vec)
    finally:
        writer.close()
    print(f"wrote {writer.count} embedding(s) of size {writer.dim} to {args.output}; "
          f"{failed} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from ..train import TrainConfig, load_config, resume, train

    overrides = {f.name: getattr(args, f"cfg_{f.name}") for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f"cfg_{f.name}", None) is not None}
    if args.resume:
        out = resume(args.resume, **overrides)
    else:
        out = train(load_config(args.config, overrides))
    print(f"run directory: {out}", file=sys.stderr)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from ..contract import STANDARD_12_LEADS, InputContract
    from ..data.shards import write_shards
    from ..train.config import load_config
    from ..train.loop import _manifest

    cfg = load_config(None, {"manifest": args.manifest, "dataset": args.dataset, "task": args.task,
                             "label_columns": args.label_columns, "limit": args.limit, "seed": args.seed})
    man = _manifest(cfg)
    if args.model:
        from ..models import load_model

        contract = load_model(args.model).info.contract
    else:
        leads = tuple(args.leads.split(",")) if args.leads else STANDARD_12_LEADS
        contract = InputContract(leads=leads)
    out = write_shards(man, contract, args.out, shard_records=args.shard_records, stride_s=args.stride,
                       lead=args.lead, workers=args.workers if args.workers is not None else 1,
                       progress=not args.no_progress and sys.stderr.isatty())
    index = json.loads((out / "index.json").read_text())
    print(f"wrote {len(index['shards'])} shard(s) to {out}: {sum(s['records'] for s in index['shards'])} "
          f"records, {sum(s['windows'] for s in index['shards'])} windows, "
          f"{index['unusable_records']} unusable", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..eval import evaluate_tables

    thresholds: Any = args.thresholds
    try:
        thresholds = float(thresholds)
    except ValueError:
        if thresholds != "youden":
            thresholds = [float(v) for v in _read_thresholds(thresholds).values()]
    predictions: Any = args.predictions
    if args.mapping:
        from ..eval.evaluate import _read_table
        from ..eval.mapping import load_mapping

        mapping = load_mapping(args.mapping)
        predictions = mapping.apply(_read_table(args.predictions), id_column=args.id_column)
        for code, why in mapping.unmapped.items():
            print(f"note: {code} ({mapping.names.get(code, '')}): not evaluated, {why}", file=sys.stderr)
    temperature = None
    if args.fit_temperature:
        from ..eval.evaluate import _read_table, fit_temperature

        cal_pred = _read_table(args.fit_temperature[0])
        if args.mapping:
            cal_pred = mapping.apply(cal_pred, id_column=args.id_column)
        cal_true = _read_table(args.fit_temperature[1])
        merged = cal_pred.merge(cal_true, on=args.id_column, suffixes=("", "__true"))
        cols = [c for c in cal_true.columns if c != args.id_column and c in cal_pred.columns]
        temperature = fit_temperature(merged[[f"{c}__true" for c in cols]].to_numpy(float),
                                      merged[cols].to_numpy(float))
        print(f"temperature {temperature:.3f} fitted on {len(merged)} records", file=sys.stderr)
    report = evaluate_tables(predictions, args.labels, id_column=args.id_column, temperature=temperature,
                             label_columns=args.label_columns.split(",") if args.label_columns else None,
                             patient_column=args.patient_column, thresholds=thresholds,
                             n_boot=args.bootstrap, seed=args.seed)
    paths = report.write(args.output_dir, plots=not args.no_plots)
    print(report.to_markdown())
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_model
    from ..models import load_model

    model = load_model(args.model, **_model_overrides(args))
    if args.int8:
        from ..export import calibration_windows, quantize_model

        if not args.calibration:
            raise ECGFounderError("--int8 needs --calibration ECG files or folders (a few dozen records "
                                  "like the ones the model will score)")
        if (args.format or Path(args.output).suffix.lower().lstrip(".")) != "onnx":
            raise ECGFounderError("--int8 writes ONNX: give --output FILE.onnx")
        windows = calibration_windows(args.calibration, model.info.contract, lead=args.lead)
        summary = quantize_model(model, args.output, windows)
    else:
        summary = export_model(model, args.output, args.format, check=not args.no_check, atol=args.atol)
    print(json.dumps(summary, indent=2))
    return 0


def _top_findings(model: Any, path: str, lead: str | None, n: int) -> list[tuple[str, float]]:
    from ..infer import Predictor

    row = Predictor(model, workers=0, progress=False, lead=lead).predict([path]).iloc[0]
    if isinstance(row.get("error"), str) and row["error"]:
        raise ECGFounderError(f"{path}: {row['error']}")
    labels = [c for c in row.index if c not in ("record", "findings", "flags", "error", "model",
                                                "preprocessing", "n_windows", "duration_s")]
    probs = sorted(((c, float(row[c])) for c in labels), key=lambda kv: -kv[1])
    return probs[:n]


def cmd_plot(args: argparse.Namespace) -> int:
    from ..io import read_ecg, read_ludb_fiducials
    from ..viz import plot_ecg, save_figure

    record = read_ecg(args.file, fs=args.fs, leads=args.leads.split(",") if args.leads else None)
    findings = _top_findings(args.model, args.file, args.lead, args.top) if args.model else None
    fiducials = read_ludb_fiducials(args.file) if args.fiducials else None
    out = Path(args.output or f"{Path(args.file).stem}.png")
    fig, geo = plot_ecg(record, layout=args.layout, lead=args.lead, start_s=args.start,
                        findings=findings, fiducials=fiducials, preprocessed=args.preprocessed,
                        max_rows=args.rows)
    save_figure(fig, out, dpi=args.dpi)
    print(f"{out}: {geo.width_mm:.0f} x {geo.height_mm:.0f} mm, {geo.rows} rows, "
          f"{geo.speed_mm_s:g} mm/s, {geo.gain_mm_mv:g} mm/mV")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from ..explain import explain
    from ..io import read_ecg
    from ..models import load_model
    from ..viz import plot_ecg, save_figure

    model = load_model(args.model, **_model_overrides(args))
    record = read_ecg(args.file)
    expl = explain(model, record, args.label, method=args.method, window=args.window, lead=args.lead,
                   target=args.target, steps=args.steps)
    print(f"{expl.record}: {expl.method} for {expl.label!r} ({expl.target} {expl.score:.3f}"
          + (f", baseline {expl.baseline_score:.3f}" if expl.baseline_score is not None else "")
          + f"), window {expl.details['window']} from {expl.start_s:g} s")
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
    fig, _ = plot_ecg(record, layout=layout, lead=expl.details.get("record_lead"), start_s=expl.start_s,
                      attribution=expl, findings=f"{expl.label} {expl.target} {expl.score:.2f}",
                      max_rows=1)
    save_figure(fig, out, dpi=args.dpi)
    print(f"figure: {out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    try:
        from ..serve import ServeSettings, create_app, default_allowed_hosts, run_server
    except ImportError as exc:
        raise ECGFounderError(f"the service needs the serve extra: pip install 'ecgfounder[serve]' ({exc})") from None
    key = args.api_key or os.environ.get("ECGFOUNDER_API_KEY") or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and not key:
        print(f"warning: listening on {args.host} without an API key (--api-key or $ECGFOUNDER_API_KEY)",
              file=sys.stderr)
    hosts = default_allowed_hosts(args.host) + list(args.allowed_host or [])
    settings = ServeSettings(model=args.model, max_upload_mb=args.max_upload_mb,
                             max_duration_s=args.max_duration, timeout_s=args.timeout, api_key=key,
                             cors_origins=args.cors_origin or [], max_batch=args.max_batch, allowed_hosts=hosts,
                             workers=args.workers, worker_memory_mb=args.worker_memory_mb,
                             max_inflight=args.max_inflight, head_timeout_s=args.head_timeout)
    app = create_app(settings)
    print(f"ecgfounder serving {args.model} on http://{args.host}:{args.port}/ (API docs at /docs; "
          f"answering Host {', '.join(hosts)})", file=sys.stderr)
    run_server(app, host=args.host, port=args.port, head_timeout_s=args.head_timeout, log_level=args.log_level)
    return 0


def _add_train_options(p: argparse.ArgumentParser) -> None:
    import dataclasses

    from ..train.config import TrainConfig

    p.add_argument("--config", help="YAML file of training settings (keys as below)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its state.pt")
    group = p.add_argument_group("settings (override the YAML file)")
    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else None
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"cfg_{f.name}", metavar="V",
                           help=f"default: {default}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecgfounder",
        description="ECGFounder ECG foundation model: read ECGs, predict, embed, train, evaluate; load, inspect and convert models.",
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

    def scoring_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="ECG files, folders (scanned recursively), glob patterns or a manifest CSV "
                            "with a 'path' column")
        p.add_argument("--model", default="ecgfounder-12lead",
                       help="registered model name or model file (default: ecgfounder-12lead)")
        p.add_argument("--per-window", action="store_true",
                       help="one row per 10 s window instead of per record (timelines of long records)")
        p.add_argument("--lead", help="channel to use for a single-lead model (e.g. II, ECG)")
        p.add_argument("--stride", type=float, metavar="SECONDS",
                       help="window step for records longer than the window (default: the window)")
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--workers", type=int, help="reading processes (0: none; default: CPUs - 1, at most 8; none with 2 CPUs or fewer)")
        p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if available)")
        p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "int8"], default="fp32",
                       help="bf16: autocast (GPU, or CPUs with native bf16); fp16: GPU; int8: CPU, "
                            "ONNX Runtime static quantisation calibrated on --calibration")
        p.add_argument("--calibration", nargs="+", metavar="INPUT",
                       help="ECG files/folders to calibrate int8 activation ranges on (64 windows)")
        p.add_argument("--compile", action="store_true",
                       help="torch.compile the model (pays a one-off compilation; CUDA graphs on GPU)")
        p.add_argument("--fs", type=float, help="sampling rate for files that do not state it")
        p.add_argument("--leads", help="comma-separated lead names for files that do not name them")
        p.add_argument("--units", help="signal units for files that do not state them")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        model_options(p)

    p = sub.add_parser("predict", help="probabilities per label (named) for ECG files")
    scoring_options(p)
    p.add_argument("--output", "-o", help="output file (default: CSV on stdout)")
    p.add_argument("--format", choices=["csv", "jsonl", "parquet"],
                   help="output format (default: from the file name, else csv)")
    p.add_argument("--aggregate", choices=["mean", "max"], default="mean",
                   help="how window probabilities make a record's (default: mean)")
    p.add_argument("--threshold", type=float, help="one decision threshold for every label")
    p.add_argument("--thresholds", metavar="FILE",
                   help="per-label thresholds: JSON {label: threshold} or CSV label,threshold")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("embed", help="pooled embeddings (1024 values for the released models)")
    scoring_options(p)
    p.add_argument("--output", "-o", required=True, help="FILE.npy (ids in FILE.ids.csv) or FILE.parquet")
    p.set_defaults(func=cmd_embed, threshold=None, thresholds=None)

    p = sub.add_parser("train", help="fine-tune, linear-probe or train from scratch (torchrun for many GPUs)")
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("prepare", help="preprocess a data set once into shards for streamed (multi-node) training")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="manifest CSV (path, labels, split)")
    src.add_argument("--dataset", help="cinc2017:<folder>, cinc2021:<folder> or ptbxl[/group]:<folder>")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--task", default="multiclass", choices=["multiclass", "multilabel", "regression"])
    p.add_argument("--label-columns", help="comma-separated label columns of the manifest")
    p.add_argument("--model", help="take the input contract (leads, rate, length) from this model")
    p.add_argument("--leads", help="comma-separated leads (default: the 12 standard leads)")
    p.add_argument("--lead", help="channel to use for a single-lead contract")
    p.add_argument("--shard-records", type=int, default=1024)
    p.add_argument("--stride", type=float, default=5.0, help="window step in seconds (default 5)")
    p.add_argument("--workers", type=int)
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("evaluate", help="per-label AUROC, AUPRC, sensitivity... with bootstrap 95%% CIs")
    p.add_argument("--predictions", required=True, help="output of `ecgfounder predict` (CSV, JSONL, Parquet)")
    p.add_argument("--labels", required=True, help="table with the id column and one 0/1 column per label")
    p.add_argument("--id-column", default="record")
    p.add_argument("--label-columns", help="comma-separated labels to evaluate (default: all shared)")
    p.add_argument("--patient-column", help="patient ids in the label table: bootstrap patients")
    p.add_argument("--thresholds", default="youden",
                   help="youden (default), a number, or a file of per-label thresholds (JSON or CSV)")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mapping", help="map 150-label predictions onto the label table's codes first: "
                                     "cinc2017, snomed_cinc2021, ptbxl_scp, ludb, or a mapping CSV")
    p.add_argument("--fit-temperature", nargs=2, metavar=("PREDICTIONS", "LABELS"),
                   help="fit temperature scaling on these (validation) tables and apply it before evaluating")
    p.add_argument("--no-plots", action="store_true", help="no ROC, PR and reliability PNGs")
    p.add_argument("--output-dir", default="evaluation", help="where metrics.csv/.json/.md and plots go")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="export a model to ONNX, TorchScript or safetensors, with a parity check")
    p.add_argument("model", help="registered model name or model file")
    p.add_argument("--output", "-o", required=True, help="FILE.onnx, FILE.pt (TorchScript) or FILE.safetensors")
    p.add_argument("--format", choices=["onnx", "torchscript", "safetensors"], help="default: from the suffix")
    p.add_argument("--atol", type=float, default=1e-4, help="parity tolerance against PyTorch (default 1e-4)")
    p.add_argument("--no-check", action="store_true", help="skip the parity check")
    p.add_argument("--int8", action="store_true",
                   help="ONNX only: static int8 quantisation (ONNX Runtime) calibrated on --calibration")
    p.add_argument("--calibration", nargs="+", metavar="INPUT", help="ECG files/folders for --int8")
    p.add_argument("--lead", help="channel to calibrate a single-lead model on")
    model_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", help="load a model strictly and describe it")
    p.add_argument("source", help="registered model name or model file (.pth, .pt, .safetensors)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    model_options(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("labels", help="print a model's output index and label name")
    p.add_argument("model", nargs="?", default="ecgfounder-12lead",
                   help="registered model name or model file (default: ecgfounder-12lead)")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("plot", help="draw an ECG on standard paper (25 mm/s, 10 mm/mV) as PNG, PDF or SVG")
    p.add_argument("file", help="ECG file")
    p.add_argument("--layout", choices=["auto", "3x4", "3x4+rhythm", "12x1", "single"], default="auto",
                   help="auto: 3x4+rhythm for 12 leads, single for one lead, else 12x1")
    p.add_argument("--output", "-o", help="out.png, out.pdf or out.svg (default: RECORD.png)")
    p.add_argument("--lead", help="lead of the rhythm strip / single layout")
    p.add_argument("--start", type=float, default=0.0, metavar="SECONDS", help="where to start")
    p.add_argument("--rows", type=int, default=6, help="most 10 s rows for the single layout (default 6)")
    p.add_argument("--preprocessed", action="store_true",
                   help="draw the signal after the model's filter chain (still in mV)")
    p.add_argument("--model", help="model whose top findings go in the header")
    p.add_argument("--top", type=int, default=3, help="findings shown with --model (default 3)")
    p.add_argument("--fiducials", action="store_true",
                   help="overlay LUDB-style delineation (.i .ii ... .v6 annotation files beside the record)")
    p.add_argument("--dpi", type=int, default=200, help="PNG resolution (default 200)")
    p.add_argument("--fs", type=float, help="sampling rate for files that do not state it")
    p.add_argument("--leads", help="comma-separated lead names for files that do not name them")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("explain", help="which leads and moments drove a label: attributions drawn on the trace")
    p.add_argument("file", help="ECG file")
    p.add_argument("--label", required=True, help="label name (see `ecgfounder labels`)")
    p.add_argument("--model", default="ecgfounder-12lead", help="registered model name or model file")
    p.add_argument("--method", choices=["integrated-gradients", "gradcam", "occlusion"],
                   default="integrated-gradients")
    p.add_argument("--target", choices=["logit", "probability"], default="logit",
                   help="explain the logit (additive; default) or the probability")
    p.add_argument("--window", type=int, help="10 s window of a long record (default: highest score)")
    p.add_argument("--lead", help="channel for a single-lead model")
    p.add_argument("--steps", type=int, default=64, help="integrated-gradients steps (default 64)")
    p.add_argument("--layout", choices=["auto", "3x4", "3x4+rhythm", "12x1", "single"], default="auto")
    p.add_argument("--output", "-o", help="figure (.png/.pdf/.svg; default RECORD_METHOD.png)")
    p.add_argument("--json", metavar="FILE", help="also write the attributions as JSON")
    p.add_argument("--dpi", type=int, default=200)
    model_options(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("serve", help="HTTP service + web page: POST /v1/predict, /v1/embed, /v1/plot, /v1/explain")
    p.add_argument("--model", default="ecgfounder-12lead", help="registered model name or model file")
    p.add_argument("--host", default="127.0.0.1", help="interface (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require this X-API-Key header (default $ECGFOUNDER_API_KEY; none)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="request body limit (default 20)")
    p.add_argument("--max-duration", type=float, default=600.0, metavar="SECONDS",
                   help="longest recording accepted (default 600)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="per request (default 60)")
    p.add_argument("--max-batch", type=int, default=32, help="windows per model call (default 32)")
    p.add_argument("--max-inflight", "--max-connections", type=int, default=64, dest="max_inflight",
                   help="requests answered at once, /healthz not counted; more get 503 + Retry-After (default 64)")
    p.add_argument("--workers", type=int, default=2, help="parse worker processes (default 2)")
    p.add_argument("--worker-memory-mb", type=int, default=1024,
                   help="memory one upload's parsing may use; past it the upload is refused (default 1024)")
    p.add_argument("--head-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="close connections that have not sent a complete request head by then (default 10)")
    p.add_argument("--allowed-host", action="append", metavar="HOST",
                   help="also answer for this Host name (repeatable; '*' for any; default: loopback names and "
                        "the --host address)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow this browser origin (repeatable; default: CORS off)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)

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
