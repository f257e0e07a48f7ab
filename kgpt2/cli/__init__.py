"""The `kgpt2` command line: a thin layer over the public Python API.

Each subcommand lives in its own module with `register(subparsers)`, which
adds its parser and sets `run(args)` as the handler. The messages kgpt2 logs
(logger "kgpt2") go to stderr through a `rich` handler; results go to stdout.
By default TensorFlow, absl and XLA start-up lines are hidden (`--verbose`
shows them), `--quiet` leaves only results and errors, and an error kgpt2
raises on purpose is one line (`--debug` or KGPT2_DEBUG=1 adds the traceback).
"""

import argparse
import os
import signal
import sys

from kgpt2.checks import shown_names
from kgpt2.cli import bench
from kgpt2.cli import demo
from kgpt2.cli import export
from kgpt2.cli import finetune
from kgpt2.cli import generate
from kgpt2.cli import plan
from kgpt2.cli import presets
from kgpt2.cli import serve
from kgpt2.cli.output import command_output
from kgpt2.cli.output import discard_stdout
from kgpt2.cli.output import package_version
from kgpt2.errors import Error
from kgpt2.training.processes import disconnect_processes

# Order here is the order in `kgpt2 --help`.
COMMANDS = [presets, finetune, generate, serve, export, bench, plan, demo]

BUG_REPORT = (
    "This is a bug in kgpt2 (or a library it uses). Please report it with the "
    "command you ran and the traceback above."
)


def _add_output_flags(parser, suppress):
    """The output flags, accepted before or after the command."""
    default = argparse.SUPPRESS if suppress else None
    volume = parser.add_mutually_exclusive_group()
    volume.add_argument("-v", "--verbose", action="store_true", default=default or False,
                        help="also show TensorFlow/absl/XLA messages and library warnings (default: off)")
    volume.add_argument("-q", "--quiet", action="store_true", default=default or False,
                        help="show only results and errors (default: off)")
    parser.add_argument("--debug", action="store_true", default=default or False,
                        help="show a traceback with every error, also set by KGPT2_DEBUG=1 (default: off)")


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
    parser.add_argument("--version", action="version", version=f"kgpt2 {package_version()}")
    _add_output_flags(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    for command_parser in subparsers.choices.values():
        _add_output_flags(command_parser, suppress=True)
        command_parser.set_defaults(shown_names=_flag_names(command_parser))
    return parser


def _flag_names(command_parser):
    """Argument name -> flag, for messages: each `--some-name` flag's `some_name`,
    then what the command maps itself (`flag_names` in its defaults, e.g.
    `sequence_length` -> `--max-length`)."""
    names = {
        action.dest: flag
        for action in command_parser._actions  # argparse lists them nowhere public
        for flag in action.option_strings
        if flag == "--" + action.dest.replace("_", "-")
    }
    return {**names, **(command_parser.get_default("flag_names") or {})}


def _debug(args):
    return args.debug or os.environ.get("KGPT2_DEBUG", "") not in ("", "0")


def _ours(error):
    """Whether kgpt2 raised `error` on purpose: a `kgpt2.Error`, or a
    ValueError/FileNotFoundError raised by kgpt2's own code."""
    if isinstance(error, Error):
        return True
    if not isinstance(error, (ValueError, FileNotFoundError)):
        return False
    traceback = error.__traceback__
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    module = traceback.tb_frame.f_globals.get("__name__", "")
    return module == "kgpt2" or module.startswith("kgpt2.")


def main(argv=None):
    """Run the `kgpt2` command line on `argv`; return the exit status.

    Example:
    ```python
    from kgpt2.cli import main

    # Prints the presets table, then the exit status:
    print(main(["presets"]))
    ```
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    with command_output(verbose=args.verbose, quiet=args.quiet):
        try:
            # Errors name the flag the user typed, not the API argument it sets.
            with shown_names(args.shown_names):
                return args.handler(args) or 0
        except KeyboardInterrupt:
            print(f"kgpt2 {args.command}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # The reader of our output left (`kgpt2 ... | head -1`): end
            # quietly, with the status of a command killed by SIGPIPE.
            discard_stdout()
            return 128 + signal.SIGPIPE
        except Exception as error:  # noqa: BLE001 - the CLI's last word on any failure
            if _ours(error) and not _debug(args):
                # Our errors name their cause; a traceback would only bury it.
                print(f"kgpt2 {args.command}: error: {error}", file=sys.stderr)
                return 1
            import traceback

            traceback.print_exc(file=sys.stderr)
            if not _ours(error):
                print(f"kgpt2 {args.command}: {BUG_REPORT}", file=sys.stderr)
            return 1


def entry():
    """The `kgpt2` console script: `main()`, then exit at once.

    Interpreter shutdown with TensorFlow and JAX loaded tears down thread
    pools and tf.data iterators one by one, which took 3-45 s of silence on
    a busy 2-core machine after the last line. Every file kgpt2 writes is
    complete (written atomically) before `main` returns, so after flushing
    the output streams the process ends without that teardown, once the
    other processes of a training group are done too.
    """
    status = main()
    disconnect_processes()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


if __name__ == "__main__":
    entry()
