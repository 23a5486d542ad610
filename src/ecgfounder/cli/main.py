"""The ``ecgfounder`` command line: one module per command in ``commands/`` (each with
``add_parser`` and ``run``); heavy imports happen inside ``run`` so that ``ecgfounder --help``
answers at once. The commands hold no logic that a library function should own: everything they
do is available in Python.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import ECGFounderError
from .commands import (
    adapt,
    compare,
    conformal,
    convert,
    distill,
    embed,
    evaluate,
    explain,
    export,
    index,
    info,
    labels,
    learning_curve,
    measure,
    models,
    monitor,
    plot,
    predict,
    prepare,
    pretrain,
    read,
    serve,
    similar,
    split,
    train,
)

__all__ = ["main", "build_parser", "COMMANDS"]

#: The commands, in the order ``ecgfounder --help`` lists them.
COMMANDS = (
    models,
    read,
    predict,
    measure,
    embed,
    index,
    similar,
    monitor,
    split,
    train,
    distill,
    pretrain,
    adapt,
    learning_curve,
    compare,
    prepare,
    evaluate,
    conformal,
    export,
    info,
    labels,
    plot,
    explain,
    serve,
    convert,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecgfounder",
        description="ECGFounder ECG foundation model: read ECGs, predict, embed, train, evaluate; load, "
        "inspect "
        "and convert models.",
    )
    parser.add_argument("--version", action="version", version=f"ecgfounder {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Exit status: 0 all inputs done; 1 some inputs failed (each named on stderr
    and in the output's ``error`` column); 2 a usage, model, output or no-input error; 130
    interrupted; 141 the reader of the output closed the pipe (``| head``)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # The consumer stopped reading: no traceback, and none when Python flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv: Sequence[str] | None) -> int:
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
