"""Find and run the `Example:` blocks of kgpt2's docstrings (not a test module).

An example is a ```python fenced block after `Example:` in a module, class or
function docstring. Running one executes its top-level statements in order,
each with its own captured output, and checks the claims:

- a comment at the end of a line with a `print(...)` call, or, where there
  is none, comment-only lines right below a top-level statement that calls
  `print` and not right above the next statement (those are a remark on it),

say what that statement prints. A claim must match the output exactly, up to
runs of whitespace; `...` in a claim stands for any text. Comments anywhere
else (`check_seed(owner, 42)  # passes`) are remarks, not claims.
"""

import ast
import contextlib
import dataclasses
import io
import pathlib
import re
import tokenize

PACKAGE = pathlib.Path(__file__).parent.parent / "kgpt2"
FENCE = re.compile(r"Example:[ \t]*\n[ \t]*```python\n(.*?)\n[ \t]*```", re.S)


@dataclasses.dataclass(frozen=True)
class Example:
    """One fenced example: where it is, and its code (dedented)."""

    name: str  # "kgpt2/atomic.py::write_atomically" (+ "#2" for a second block)
    code: str


def find_examples(package=PACKAGE):
    """Every `Example:` block under `package`, in file order."""
    examples = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        where = path.relative_to(package.parent).as_posix()
        for qualname, node in _documented(tree):
            docstring = ast.get_docstring(node, clean=True) or ""
            for index, match in enumerate(FENCE.finditer(docstring)):
                name = f"{where}::{qualname}" + (f"#{index + 1}" if index else "")
                examples.append(Example(name, match.group(1)))
    return examples


def _documented(tree, prefix=""):
    """(qualified name, node) of the module and every class and function."""
    if not prefix:
        yield "<module>", tree
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            qualname = prefix + node.name
            yield qualname, node
            yield from _documented(node, qualname + ".")


def _comments(code):
    """{line number: comment text without '#'} and the set of comment-only lines."""
    comments, alone = {}, set()
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    previous = None
    for token in tokens:
        if token.type == tokenize.COMMENT:
            line = token.start[0]
            comments[line] = token.string[1:].strip()
            if previous is None or previous.type in (tokenize.NL, tokenize.NEWLINE,
                                                     tokenize.INDENT, tokenize.DEDENT):
                alone.add(line)
        if token.type not in (tokenize.INDENT, tokenize.DEDENT):
            previous = token
    return comments, alone


def _print_lines(statement):
    """The last line of every `print(...)` call inside `statement`."""
    return {
        node.end_lineno for node in ast.walk(statement)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    }


def claims(code):
    """[(statement, claimed output or None)] for the top-level statements."""
    tree = ast.parse(code)
    lines = code.splitlines()
    comments, alone = _comments(code)
    result = []
    for statement in tree.body:
        print_lines = _print_lines(statement)
        parts = [comments[line] for line in sorted(print_lines)
                 if line in comments and line not in alone]
        below, line = [], statement.end_lineno + 1
        while line in alone:
            below.append(comments[line])
            line += 1
        # Comment lines right above the next statement are a remark on it.
        if print_lines and not parts and not (line <= len(lines) and lines[line - 1].strip()):
            parts = below
        result.append((statement, "\n".join(parts) if parts else None))
    return result


def matches(claim, output):
    """True when `output` is what `claim` says, up to whitespace and `...`."""
    def squeeze(text):
        return " ".join(text.split())

    pattern = ".*?".join(re.escape(squeeze(piece)) for piece in claim.split("..."))
    return re.fullmatch(pattern, squeeze(output), re.S) is not None


def run_example(example):
    """Run `example`; raise AssertionError naming the first false claim."""
    namespace = {"__name__": "__example__"}
    for statement, claim in claims(example.code):
        module = ast.Module(body=[statement], type_ignores=[])
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(module, f"<{example.name}>", "exec"), namespace)
        output = buffer.getvalue()
        if claim is not None and not matches(claim, output):
            raise AssertionError(
                f"{example.name}, line {statement.lineno}: the example claims\n"
                f"    {claim!r}\nbut it printed\n    {output.rstrip()!r}"
            )


def run_example_in_a_new_process(name):
    """Run the example `name` in a new Python process (for examples about
    what importing loads); raise AssertionError with its output if it fails."""
    import os
    import subprocess
    import sys

    tests = str(pathlib.Path(__file__).parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(PACKAGE.parent), tests, os.environ.get("PYTHONPATH")])))
    code = ("import sys, docstring_examples as d; "
            "d.run_example(next(e for e in d.find_examples() if e.name == sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", code, name], capture_output=True,
                            text=True, env=env, timeout=300)
    if result.returncode != 0:
        raise AssertionError(result.stderr[-3000:])
