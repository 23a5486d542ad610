"""What several commands share: option groups and building a Predictor from the options."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "model_options",
    "scoring_options",
    "model_overrides",
    "make_predictor",
    "add_train_options",
    "read_thresholds",
    "add_verbose",
    "quiet_third_party",
]


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show the warnings and log lines of PyTorch and ONNX (tracer, exporter, deprecations)",
    )


@contextlib.contextmanager
def quiet_third_party(verbose: bool = False) -> Iterator[None]:
    """Within: the tracer's, the ONNX exporter's and other libraries' warnings and log lines (the
    TracerWarning on shape checks, 'torchvision is not installed', deprecation notices) are not
    printed, unless ``verbose``. Our own messages and errors are unaffected."""
    if verbose:
        yield
        return
    import logging
    import warnings

    loggers = [
        logging.getLogger(name) for name in ("torch", "torch.onnx", "torch.export", "onnxscript", "onnx_ir")
    ]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.filterwarnings(
                "ignore", category=category, module=r"(torch|onnx|onnxscript|onnx_ir|copyreg)"
            )
        try:
            from torch.jit import TracerWarning

            warnings.filterwarnings("ignore", category=TracerWarning)
        except ImportError:  # pragma: no cover
            pass
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def read_thresholds(path: str) -> dict[str, float]:
    """:func:`ecgfounder.eval.thresholds.read_thresholds`, imported when needed (keeps --help light)."""
    from ..eval.thresholds import read_thresholds as read

    return read(path)


def model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--template",
        metavar="NAME",
        help="registered model whose input contract and labels apply to a file without metadata",
    )
    bn = p.add_mutually_exclusive_group()
    bn.add_argument(
        "--use-bn",
        dest="use_bn",
        action="store_true",
        default=None,
        help="force BatchNorm on (default: inferred from the file)",
    )
    bn.add_argument("--no-use-bn", dest="use_bn", action="store_false", help="force BatchNorm off")


def scoring_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="ECG files, folders (scanned recursively), glob patterns or a manifest CSV with a 'path' column",
    )
    p.add_argument(
        "--model",
        help="registered model name or model file (default: ecgfounder-12lead for 12-lead inputs, "
        "ecgfounder-1lead for single-lead ones)",
    )
    p.add_argument(
        "--per-window",
        action="store_true",
        help="one row per 10 s window instead of per record (timelines of long records)",
    )
    p.add_argument("--lead", help="channel to use for a single-lead model (e.g. II, ECG)")
    p.add_argument(
        "--stride",
        type=float,
        metavar="SECONDS",
        help="window step for records longer than the window (default: the window)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="windows per model call (default 64)")
    p.add_argument(
        "--workers",
        type=int,
        help="reading processes (0: none; default: CPUs - 1, at most 8; none with 2 CPUs or fewer)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if available)")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "int8"],
        default="fp32",
        help="bf16: autocast (GPU, or CPUs with native bf16); fp16: GPU; int8: CPU, "
        "ONNX Runtime static quantisation calibrated on --calibration",
    )
    p.add_argument(
        "--calibration",
        nargs="+",
        metavar="INPUT",
        help="ECG files/folders to calibrate int8 activation ranges on (64 windows)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (pays a one-off compilation; CUDA graphs on GPU)",
    )
    p.add_argument("--fs", type=float, help="sampling rate for files that do not state it")
    p.add_argument("--leads", help="comma-separated lead names for files that do not name them")
    p.add_argument("--units", help="signal units for files that do not state them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    model_options(p)


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {} if args.use_bn is None else {"use_bn": args.use_bn}


def predictor_options(args: argparse.Namespace, sources: Any = None) -> tuple[Any, dict[str, Any]]:
    """The model (a loaded model, or an export's path) and the Predictor options the command line
    describes. Without ``--model``, the released model that fits the first readable input (12 leads
    or 1 lead) is chosen, and said so on stderr."""
    import os

    from ..infer.runs import suggest_model

    def on_error(key: str, reason: str) -> None:
        print(f"error: {key}: {reason}", file=sys.stderr)

    if args.model is None:
        args.model, why = suggest_model(sources if sources is not None else args.inputs)
        print(f"model: {args.model} ({why}; --model to choose another)", file=sys.stderr)
    if args.device is None and os.environ.get("LOCAL_RANK") is not None:
        import torch

        if torch.cuda.is_available():  # torchrun: one GPU per process
            args.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    thresholds: Any = args.threshold  # side files first: a damaged one is refused before the model loads
    if args.thresholds:
        thresholds = read_thresholds(args.thresholds)
    conformal = None
    if getattr(args, "conformal", None):
        from ..eval.conformal import load_conformal

        conformal = load_conformal(args.conformal)
    from ..models import load_model
    from ..models.checkpoint import is_torchscript

    exported = str(args.model).lower().endswith(".onnx") or (
        Path(args.model).is_file() and is_torchscript(args.model)
    )
    model = (
        args.model if exported else load_model(args.model, **model_overrides(args))
    )  # exports run as they are
    options = dict(
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        lead=args.lead,
        stride_s=args.stride,
        aggregate=getattr(args, "aggregate", None),
        thresholds=thresholds,
        fs=args.fs,
        leads=args.leads.split(",") if args.leads else None,
        units=args.units,
        on_error=on_error,
        calibration=args.calibration,
        compile=args.compile,
        conformal=conformal,
        measure=bool(getattr(args, "measure", False)),
        artifact_checks=not getattr(args, "no_artifact_checks", False),
    )
    return model, options


def make_predictor(args: argparse.Namespace, sources: Any = None) -> Any:
    """The Predictor the options describe (:func:`predictor_options`)."""
    from ..infer import Predictor

    model, options = predictor_options(args, sources)
    try:
        return Predictor(model, workers=args.workers, progress=False if args.no_progress else None, **options)
    except ValueError as exc:
        from ..errors import ECGFounderError

        raise ECGFounderError(str(exc)) from None


def archive_options(p: argparse.ArgumentParser) -> None:
    """``--run-dir`` and the engine options of archive runs (:mod:`ecgfounder.infer.archive`)."""
    g = p.add_argument_group("archive runs (docs/scale.md)")
    g.add_argument(
        "--run-dir",
        metavar="DIR",
        help="score into a run directory: blocks of records written whole as Parquet parts, every "
        "record exactly once; run the same command again to resume a killed run",
    )
    g.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="with --run-dir: this process (local) or Ray Data (ray; pip install 'ecgfounder[scale]')",
    )
    g.add_argument("--address", help="with --engine ray: the Ray cluster (default: a local one started here)")
    g.add_argument(
        "--actors", type=int, help="with --engine ray: model actors (default: one per GPU, else CPUs/2)"
    )
    g.add_argument("--block-size", type=int, default=64, help="records per block and part (default 64)")


def run_archive_command(args: argparse.Namespace, task: str) -> int:
    """``predict``/``embed`` with ``--run-dir``: the run, then the rows in ``--output`` if given."""
    from ..errors import ECGFounderError
    from ..infer.archive import archive_status, run_archive
    from ..infer.runs import collect_inputs

    for name in ("resume", "shard"):
        if getattr(args, name, None):
            raise ECGFounderError(f"--{name} is for single-file runs; a --run-dir run resumes by itself")
    sources = collect_inputs(args.inputs)
    model, options = predictor_options(args, sources)
    options.pop("on_error")
    engine_workers = args.actors if args.engine == "ray" else args.workers
    summary = run_archive(
        model,
        sources,
        args.run_dir,
        task=task,  # type: ignore[arg-type]
        engine=args.engine,
        options=options,
        per_window=args.per_window,
        block_size=args.block_size,
        workers=engine_workers,
        address=args.address,
        progress=False if args.no_progress else None,
        output=args.output,
        fmt=getattr(args, "format", None),
        overwrite=args.overwrite,
    )
    status = archive_status(args.run_dir)
    kept = f"; {summary.blocks_before} block(s) were already done" if summary.blocks_before else ""
    wrote = f"; all rows in {summary.output}" if summary.output else ""
    print(
        f"{args.run_dir}: {status.records_done} of {status.records} record(s) done in "
        f"{status.blocks_done} part(s){kept}; this run: {summary.records} record(s) on {args.engine} "
        f"({summary.workers} worker(s)) in {summary.seconds:.1f} s, {summary.failed} failed{wrote}",
        file=sys.stderr,
    )
    return 1 if summary.failed else 0


def data_setting(data: Sequence[str]) -> dict[str, Any]:
    """``--data`` as a training setting: one data-set layout (``cinc2017:DIR``, ``ludb:DIR``...) is
    ``dataset``; anything else (files, folders, globs, manifests, URLs) is ``inputs``."""
    from ..train.config import LAYOUTS

    first = data[0] if data else ""
    if (
        len(data) == 1
        and ":" in first
        and not first.startswith(("/", "."))
        and first.split(":", 1)[0].split("/")[0] in LAYOUTS
    ):
        return {"dataset": first}
    return {"inputs": list(data)}


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings given on the command line (``--key value``), as config overrides."""
    import dataclasses

    from ..train.config import TrainConfig

    return {
        f.name: getattr(args, f"cfg_{f.name}")
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f"cfg_{f.name}", None) is not None
    }


def add_train_options(p: argparse.ArgumentParser) -> None:
    import dataclasses

    from ..train.config import FIELD_HELP, TrainConfig

    p.add_argument("--config", help="YAML file of training settings (keys as below)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its state.pt")
    group = p.add_argument_group("settings (override the YAML file)")
    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else None
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"cfg_{f.name}",
            metavar="V",
            help=f"{FIELD_HELP[f.name]} (default: {default})".replace("%", "%%"),
        )
