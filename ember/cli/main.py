"""Entry point of the `ember` console script: an argparse parser with one subparser per command.

A command is a module with `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`;
adding one (`train`, `run`, `serve`) means writing that module and listing it in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys

from . import info, run, train

COMMANDS = [info, train, run]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with a subparser for every module in COMMANDS."""
    import ember

    parser = argparse.ArgumentParser(prog="ember", description="ember: a full-stack deep learning system.")
    parser.add_argument("--version", action="version", version=f"ember {ember.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.NAME, help=cmd.HELP, description=cmd.HELP)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]) and run the chosen command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
