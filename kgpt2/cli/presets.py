"""`kgpt2 presets`: list every preset name with its size and origin."""

import kgpt2
from kgpt2.cli.tables import print_lines
from kgpt2.cli.tables import print_table


def register(subparsers):
    parser = subparsers.add_parser(
        "presets",
        help="list GPT-2 presets (official and built-in offline ones)",
        description="List every preset name kgpt2 can load, with parameter "
        "count, float32 size and where it comes from.",
    )
    parser.set_defaults(handler=run)


def run(args):
    rows = []
    for name in kgpt2.presets.names():
        info = kgpt2.presets.info(name)
        rows.append([info.name, f"{info.params:,}", f"{info.float32_mb:,.1f}", info.source])
    print_table(None, ["name", "parameters", "float32 MiB", "source"], rows,
                numeric={"parameters", "float32 MiB"})
    print_lines("Also accepted: a local preset directory, hf://USER/REPO, kaggle://HANDLE.")
