"""edge-fer: from a facial-expression dataset on disk to trained, quantized, exported and benchmarked models for
CPUs, GPUs and Jetson boards. Start with `edge-fer run` (the built-in quickstart), then `edge-fer pick`."""

from __future__ import annotations

import argparse
import os
import sys

from rich.markup import escape

from edge_fer import __version__, ui
from edge_fer.cli import bench, data, debug, doctor, export, models, predict, run, targets, train
from edge_fer.errors import UserError

GROUPS = (run, data, models, train, export, bench, predict, debug, targets, doctor)  # each registers its subcommands
EPILOG = """first steps:
  edge-fer run                          the quickstart: train, quantize, export, evaluate, bench, report
  edge-fer pick --target host-cpu --max-p50-ms 1    the most accurate artifact within a latency budget
  edge-fer run PIPELINE.toml --set train.scratch.epochs=3    your own pipeline file, a value changed
  edge-fer doctor                       what this machine has for each stage, and how to add the rest
every command takes --help; --json prints what a program reads"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-fer", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"edge-fer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


def _user_caused() -> tuple:
    import json
    import sqlite3

    return (OSError, sqlite3.Error, json.JSONDecodeError, UnicodeDecodeError)


USER_CAUSED = _user_caused()


def describe(error: BaseException) -> str:
    """One line for an error the user's files or folders caused, naming the file where Python knows it."""
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or type(error).__name__}"
    if isinstance(error, UnicodeDecodeError):
        return f"a file is not UTF-8 text (byte {error.start}: {error.reason})"
    if isinstance(error, ValueError) and type(error).__name__ == "JSONDecodeError":
        return f"a JSON file is not valid JSON ({error.msg} at line {error.lineno})"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        ui.err.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        return error.exit_code
    except KeyboardInterrupt:
        ui.err.print("interrupted")
        return 130
    except USER_CAUSED as error:  # the file system, a results store, a JSON or text file the user gave
        if os.environ.get("EDGE_FER_DEBUG"):
            raise
        ui.err.print(f"[red]error:[/] {escape(describe(error))} (EDGE_FER_DEBUG=1 shows the traceback)", soft_wrap=True)
        return 2


def entry() -> None:
    """The `edge-fer` command: native library output goes to a log file, then main()."""
    from edge_fer import quiet

    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show a character gets '?', not a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    if not os.environ.get("EDGE_FER_DEBUG"):
        try:
            quiet.native_output_to(os.environ.get("EDGE_FER_LOG") or quiet.default_log())
        except OSError:
            pass  # no writable log folder: the messages stay on the terminal
    sys.exit(main())


