"""Generate the site's CLI reference, API reference and notebook pages.

mkdocs-gen-files runs this file on every `mkdocs build`/`mkdocs serve`
(see mkdocs.yml), so the pages follow the code and cannot drift:

- `cli/<command>.md`: one page per `kgpt2` command, read from the argparse
  parsers that `kgpt2.cli.build_parser()` builds;
- `reference/<package>.md`: one page per public package, one section per
  name in its `__all__`, rendered from the docstrings by mkdocstrings;
- `notebooks/*.ipynb`: the repository's notebooks, rendered (not run) by
  mkdocs-jupyter.

Importing this module writes nothing; tests/test_docs.py checks its output
against the parsers and the packages.
"""

import argparse
import ast
import importlib
import importlib.util
import pathlib
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
# The packages whose `__all__` is public API, in the reference's order.
PUBLIC_PACKAGES = (
    "kgpt2", "kgpt2.presets", "kgpt2.data", "kgpt2.training", "kgpt2.training.callbacks",
    "kgpt2.samplers", "kgpt2.generation", "kgpt2.serving", "kgpt2.bench",
)
NOTEBOOKS = ROOT / "notebooks"


def subcommands(parser):
    """{name: parser} of `parser`'s subcommands, in `kgpt2 --help` order."""
    for action in parser._actions:  # argparse keeps its subparsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(action):
    if action.required:
        return "required"
    if action.default in (None, argparse.SUPPRESS) or isinstance(
            action, (argparse._HelpAction, argparse._VersionAction)):
        return ""
    if action.default is False and action.nargs == 0:
        return ""
    return f"`{action.default}`"


def options_table(parser):
    """A Markdown table of `parser`'s arguments: flags, value, default, help."""
    rows = ["| argument | value | default | description |", "|---|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.dest}`"
        if action.nargs == 0:
            value = ""
        elif action.choices is not None:
            value = " \\| ".join(f"`{choice}`" for choice in action.choices)
        else:
            value = f"`{action.metavar or action.dest.upper()}`"
        description = "" if action.help == argparse.SUPPRESS else (action.help or "")
        rows.append(f"| {names} | {value} | {_default(action)} | {_cell(description)} |")
    return "\n".join(rows)


def _usage(parser):
    # A fixed width, so the page does not depend on the terminal that built it.
    formatter = argparse.HelpFormatter(parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def command_page(parser):
    """The Markdown page of one command's parser."""
    lines = [f"# `{parser.prog}`", ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += ["```text", _usage(parser), "```", "", options_table(parser), ""]
    if parser.epilog:
        lines += [parser.epilog, ""]
    return "\n".join(lines)


def cli_pages():
    """{path: Markdown} of the CLI reference: an index and a page per command."""
    from kgpt2.cli import build_parser

    parser = build_parser()
    commands = subcommands(parser)
    index = [
        "# CLI reference", "",
        "Generated from the `kgpt2` argument parsers on every build. "
        "`kgpt2 COMMAND --help` prints the same in a terminal.", "",
        command_page(parser).split("\n", 2)[2], "",
        "| command | what it does |", "|---|---|",
    ]
    pages = {}
    help_of = {action.dest: action.help for action in _subcommand_actions(parser)}
    for name, command in commands.items():
        pages[f"cli/{name}.md"] = command_page(command)
        index.append(f"| [`kgpt2 {name}`]({name}.md) | {_cell(help_of.get(name, ''))} |")
    pages["cli/index.md"] = "\n".join(index) + "\n"
    return pages


def _subcommand_actions(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action._choices_actions
    return []


def _top_level_assignment(module_name, name):
    """Whether `module_name`'s source assigns `name` at its top level."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return False
    tree = ast.parse(pathlib.Path(spec.origin).read_text("utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return True
    return False


def defined_in(package, name):
    """The dotted path where `package.name` is defined, for mkdocstrings."""
    value = getattr(importlib.import_module(package), name)
    if isinstance(value, types.ModuleType):
        return value.__name__
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if isinstance(module, str) and module.startswith("kgpt2") and qualname:
        return f"{module}.{qualname}"
    # A constant: the kgpt2 module that assigns it (lazy packages re-export).
    for candidate in sorted(m for m in sys.modules if m == "kgpt2" or m.startswith("kgpt2.")):
        if getattr(sys.modules[candidate], name, object()) is value and _top_level_assignment(candidate, name):
            return f"{candidate}.{name}"
    raise LookupError(f"cannot tell where {package}.{name} is defined")


def public_names(package):
    return list(importlib.import_module(package).__all__)


def _page_of(package):
    return "reference/" + ("index" if package == "kgpt2" else package.removeprefix("kgpt2.")) + ".md"


def reference_page(package):
    """The API page of `package`: its docstring, then one section per public name."""
    lines = [f"# `{package}`", "", f"::: {package}", "    options:",
             "      members: false", "      show_root_heading: false", ""]
    for name in public_names(package):
        target = defined_in(package, name)
        # Escaped: a heading `__version__` would render as bold "version".
        lines += [f"## {package}.{name}".replace("_", "\\_"), ""]
        if target in PUBLIC_PACKAGES:
            link = pathlib.PurePosixPath(_page_of(target)).name
            lines += [f"The subpackage, documented on its own page: [`{target}`]({link}).", ""]
            continue
        lines += [f"::: {target}", "    options:", "      show_root_heading: false", ""]
    return "\n".join(lines)


def reference_pages():
    """{path: Markdown} of the API reference, a page per public package."""
    return {_page_of(package): reference_page(package) for package in PUBLIC_PACKAGES}


def notebook_pages():
    """{path: notebook JSON} of the notebooks, for mkdocs-jupyter."""
    return {f"notebooks/{path.name}": path.read_text("utf-8")
            for path in sorted(NOTEBOOKS.glob("*.ipynb"))}


def write_pages():
    import mkdocs_gen_files

    pages = {**cli_pages(), **reference_pages(), **notebook_pages()}
    for path, text in pages.items():
        with mkdocs_gen_files.open(path, "w") as file:
            file.write(text)


if __name__ in ("__main__", "<run_path>"):
    sys.path.insert(0, str(ROOT))
    write_pages()
