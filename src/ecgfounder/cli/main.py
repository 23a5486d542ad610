"""The ``ecgfounder`` command line: one module per command in ``commands/`` (each with
``add_parser`` and ``run``); heavy imports happen inside ``run`` so that ``ecgfounder --help``
answers at once. The commands hold no logic that a library function should own: everything they
do is available in Python.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import ECGFounderError
from .commands import (convert, embed, evaluate, explain, export, info, labels, models, plot, predict, prepare,
                       read, serve, train)

__all__ = ["main", "build_parser", "COMMANDS"]

#: The commands, in the order ``ecgfounder --help`` lists them.
COMMANDS = (models, read, predict, embed, train, prepare, evaluate, export, info, labels, plot, explain, serve,
            convert)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecgfounder",
        description="ECGFounder ECG foundation model: read ECGs, predict, embed, train, evaluate; load, inspect "
                    "and convert models.",
    )
    parser.add_argument("--version", action="version", version=f"ecgfounder {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
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
