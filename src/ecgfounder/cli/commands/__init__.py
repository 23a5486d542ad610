"""One module per ``ecgfounder`` command: ``add_parser(subparsers)`` and ``run(args) -> exit status``."""
