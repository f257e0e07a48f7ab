"""The `kgpt2` command line: a thin layer over the public Python API.

Each subcommand lives in its own module with `register(subparsers)`, which
adds its parser and sets `run(args)` as the handler.
"""

import argparse
import sys

from kgpt2.cli import bench
from kgpt2.cli import demo
from kgpt2.cli import export
from kgpt2.cli import finetune
from kgpt2.cli import generate
from kgpt2.cli import plan
from kgpt2.cli import presets
from kgpt2.cli import serve

# Order here is the order in `kgpt2 --help`.
COMMANDS = [presets, finetune, generate, serve, export, bench, plan, demo]


def build_parser():
    """Build the `kgpt2` argument parser with every subcommand.

    Example:
    ```python
    from kgpt2.cli import build_parser

    print(build_parser().parse_args(["presets"]).command)  # presets
    ```
    """
    parser = argparse.ArgumentParser(
        prog="kgpt2",
        description="Fine-tune GPT-2 and generate text with it, on Keras 3 + "
        "KerasHub. Works offline with the built-in presets gpt2_tiny_random "
        "and gpt2_base_random.",
        epilog="Run `kgpt2 COMMAND --help` for a command's options. Start "
        "with `kgpt2 demo`.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `kgpt2` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from kgpt2.errors import Error
    from kgpt2.presets import PresetError

    try:
        return args.handler(args) or 0
    except (Error, PresetError, ValueError, FileNotFoundError) as error:
        # Our errors name their cause; a traceback would only bury it.
        print(f"kgpt2 {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"kgpt2 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
