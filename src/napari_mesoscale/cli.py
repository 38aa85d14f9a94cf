"""Command line: ``napari-mesoscale demo | segment | connect | fit | evaluate``.

Each subcommand lives in the module that owns its science; that module provides
``configure(parser)`` to declare its arguments and ``run(args) -> int`` to execute. Those modules
import napari (only ``demo`` needs it) inside ``run``, so building the parser stays headless.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("napari_mesoscale.napari._demo", "Run the whole pipeline on the bundled sample data."),
    "segment": ("napari_mesoscale.segment.cli", "Detect point sources in a movie or EM volume."),
    "connect": ("napari_mesoscale.connectome.cli", "Build a connectome from tables."),
    "fit": ("napari_mesoscale.model.cli", "Fit the mesoscale model to activity."),
    "evaluate": ("napari_mesoscale.evaluate.cli", "Score predictions against a recording."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-mesoscale", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            sub_parser.set_defaults(_module=None)
            continue
        module.configure(sub_parser)
        if name != "demo":
            sub_parser.add_argument(
                "--overwrite",
                action="store_true",
                help="replace existing output files or folders (never an input)",
            )
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._module is None:
        parser.error(f"'{args.command}' is not available in this installation.")
    try:
        return int(args._module.run(args) or 0)
    except _EXPECTED as error:
        print(f"napari-mesoscale {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"napari-mesoscale {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: one line, the traceback only on request
        if os.environ.get("NAPARI_MESOSCALE_TRACEBACK"):
            raise
        print(
            f"napari-mesoscale {args.command}: internal error: {type(error).__name__}: "
            f"{_one_line(error)} (set NAPARI_MESOSCALE_TRACEBACK=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


# bad input, missing or unreadable files, unavailable devices, corrupt archives
_EXPECTED = (ValueError, OSError, EOFError, MemoryError, RuntimeError, AssertionError)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.strerror}: {error.filename}"
    return text or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
