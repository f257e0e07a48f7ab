"""The README and the documentation site: what must not drift.

- The README opens with the two set-up commands CI runs, and stays short.
- The CLI reference is the parsers' own arguments, the API reference every
  public name (docs/scripts/gen_pages.py writes both on every build).
- Every ```python block of the README and docs/ runs, and prints what its
  `# ...` comments claim (the docstring examples' rules, docstring_examples.py).
  A block that needs the network is marked `<!-- not run: needs the network
  (...) -->` on the line above it, and claims no output.
- The built site's search index names every public name, every notebook and
  every command (slow: it runs `mkdocs build --strict`).
"""

import argparse
import importlib
import importlib.util
import json
import os
import pathlib
import pkgutil
import re
import subprocess
import sys
import tempfile

import pytest
from docstring_examples import Example
from docstring_examples import claims
from docstring_examples import run_example

import kgpt2

ROOT = pathlib.Path(__file__).parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
COMMANDS = [
    'python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/kgpt2 demo',
    'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/ruff check . '
    '&& .venv/bin/python -m pytest -n 2',
]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*\Z", re.S)
# Building a model or training takes seconds.
SLOW_MARKS = ("kgpt2.load(", "finetune(", ".fit(")


def _gen_pages():
    spec = importlib.util.spec_from_file_location("gen_pages", DOCS / "scripts" / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN_PAGES = _gen_pages()


def code_blocks(path):
    """[(language, code, reason it is not run or None)] of a Markdown file."""
    text = path.read_text("utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = NOT_RUN.search(text[:match.start()].rstrip("\n") + "\n")
        blocks.append((match.group(1), match.group(2).rstrip("\n"), before and before.group(1)))
    return blocks


def python_blocks():
    found = []
    for path in PAGES:
        index = 0
        for language, code, not_run in code_blocks(path):
            if language == "python":
                index += 1
                name = f"{path.relative_to(ROOT).as_posix()}#{index}"
                found.append((Example(name, code), not_run))
    return found


BLOCKS = python_blocks()


def _param(example):
    marks = [pytest.mark.slow] if any(mark in example.code for mark in SLOW_MARKS) else []
    return pytest.param(example, id=example.name, marks=marks)


# --- the README ---

def test_readme_opens_with_the_two_commands():
    text = README.read_text("utf-8")
    language, code, _ = code_blocks(README)[0]
    assert language == "bash"
    assert code.splitlines() == COMMANDS
    last = text.index(COMMANDS[1])
    assert text[:last].count("\n") < 10, "the commands must be within the README's first 10 lines"


def test_ci_runs_the_readme_test_command():
    assert COMMANDS[1] in (ROOT / ".ci" / "run").read_text("utf-8")


def test_readme_is_a_front_door():
    lines = README.read_text("utf-8").splitlines()
    assert len(lines) <= 200
    # One measurement table at most, and it says when it was measured.
    tables = [i for i, line in enumerate(lines) if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line)]
    assert len(tables) <= 1, f"the README has {len(tables)} tables; measurements go to docs/benchmarks.md"
    for index in tables:
        assert any(re.search(r"\b20\d\d-\d\d-\d\d\b", line) for line in lines[max(0, index - 10):index])


def test_readme_links_to_every_guide():
    text = README.read_text("utf-8")
    guides = [path.name for path in DOCS.glob("*.md") if path.name != "index.md"]
    missing = [name for name in guides if f"(docs/{name}" not in text]
    assert not missing, f"the README's feature map does not link {missing}"


# --- the CLI reference ---

def _options(parser):
    return [action for action in parser._actions if not isinstance(action, argparse._SubParsersAction)]


def test_cli_reference_has_a_page_per_command_with_every_option():
    from kgpt2.cli import build_parser

    parser = build_parser()
    commands = GEN_PAGES.subcommands(parser)
    pages = GEN_PAGES.cli_pages()
    assert set(pages) == {"cli/index.md"} | {f"cli/{name}.md" for name in commands}
    for name, command in commands.items():
        page = " ".join(pages[f"cli/{name}.md"].split())
        assert f"kgpt2 {name}" in page
        for action in _options(command):
            for flag in action.option_strings:
                assert f"`{flag}`" in page, f"kgpt2 {name}: {flag} is missing from its page"
            if action.help and action.help != argparse.SUPPRESS:
                assert " ".join(action.help.split()).replace("|", "\\|") in page, (name, action.help)
            if action.default not in (None, False, argparse.SUPPRESS) and not action.option_strings == ["-h", "--help"]:
                assert f"`{action.default}`" in page, (name, action.dest, action.default)
    index = pages["cli/index.md"]
    assert all(f"({name}.md)" in index for name in commands)


def test_cli_reference_follows_a_changed_parser():
    parser = argparse.ArgumentParser(prog="kgpt2 made-up", description="Made up.")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps")
    page = GEN_PAGES.command_page(parser)
    assert "| `--steps` | `STEPS` | `40` | optimizer steps |" in page
    parser.add_argument("--preset", required=True, help="a preset name")
    assert "| `--preset` | `PRESET` | required | a preset name |" in GEN_PAGES.command_page(parser)
    parser.add_argument("--new-flag", choices=["a", "b"], help="a new flag")
    assert "| `--new-flag` | `a` \\| `b` |  | a new flag |" in GEN_PAGES.command_page(parser)


def test_the_site_lists_every_command_page():
    from kgpt2.cli import build_parser

    nav = (ROOT / "mkdocs.yml").read_text("utf-8")
    for name in GEN_PAGES.subcommands(build_parser()):
        assert f"cli/{name}.md" in nav


# --- the API reference ---

def test_every_public_package_has_a_reference_page():
    packages = set()
    for module in pkgutil.walk_packages(kgpt2.__path__, "kgpt2."):
        if module.ispkg and not module.name.startswith("kgpt2.cli"):
            if "__all__" in vars(importlib.import_module(module.name)):
                packages.add(module.name)
    assert packages | {"kgpt2"} == set(GEN_PAGES.PUBLIC_PACKAGES)


@pytest.mark.parametrize("package", GEN_PAGES.PUBLIC_PACKAGES)
def test_reference_page_documents_every_public_name(package):
    page = GEN_PAGES.reference_page(package)
    for name in importlib.import_module(package).__all__:
        assert f"\n## {package}.{name}\n".replace("_", "\\_") in page
        target = GEN_PAGES.defined_in(package, name)
        assert f"::: {target}" in page or target in GEN_PAGES.PUBLIC_PACKAGES
        if target not in GEN_PAGES.PUBLIC_PACKAGES:
            # mkdocstrings reads the source: the name must be defined where it looks.
            assert _resolve(target) is getattr(importlib.import_module(package), name)


def _resolve(dotted):
    """The object at `dotted`: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            value = getattr(value, part)
        return value
    raise ImportError(dotted)


# --- the code blocks ---

def test_code_blocks_are_found():
    names = {example.name for example, _ in BLOCKS}
    assert "README.md#1" in names
    assert len(BLOCKS) >= 15


def test_blocks_that_are_not_run_need_the_network_and_claim_no_output():
    for example, not_run in BLOCKS:
        if not_run is not None:
            assert not_run.startswith("needs the network"), (example.name, not_run)
            claimed = [claim for _, claim in claims(example.code) if claim is not None]
            assert not claimed, f"{example.name} is not run, so it cannot claim {claimed}"


@pytest.mark.parametrize("example", [_param(e) for e, not_run in BLOCKS if not_run is None])
def test_code_block_runs_and_prints_what_it_claims(example, tmp_path, monkeypatch):
    # Blocks write relative paths (checkpoint/..., notes.txt): keep them here.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run_example(example)


# --- the built site ---

@pytest.mark.slow
def test_site_builds_strictly_and_its_search_index_names_everything(tmp_path):
    from kgpt2.cli import build_parser

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               DISABLE_MKDOCS_2_WARNING="true", NO_MKDOCS_2_WARNING="1")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    docs = json.loads((site / "search" / "search_index.json").read_text("utf-8"))["docs"]
    titles = {re.sub(r"<[^>]+>", "", entry["title"]) for entry in docs}
    locations = {entry["location"].split("#")[0] for entry in docs}
    for package in GEN_PAGES.PUBLIC_PACKAGES:
        for name in importlib.import_module(package).__all__:
            assert f"{package}.{name}" in titles, f"{package}.{name} is not in the search index"
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{notebook.stem}/" in locations, notebook.name
    for name in GEN_PAGES.subcommands(build_parser()):
        assert f"cli/{name}/" in locations, name
