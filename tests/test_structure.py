"""The package's structure, read from its source: no import cycle, no private
name used across modules, and lower layers never import higher ones.

Every `import` counts, at the top of a file or inside a function, and so do
the lazy names of a package's `lazy_exports` table (`kgpt2.load` imports
`kgpt2.presets.loading` on first use). Importing `a.b.c` also runs the
`__init__` of `a` and `a.b`; those edges are left out, as import checkers do,
because a package may import its own submodules.
"""

import ast
import builtins
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parent.parent
PACKAGE = ROOT / "kgpt2"

# Lowest first: a module may import from its own layer and the layers below.
# Modules not named here take the layer of their subpackage.
LAYERS = (
    # What every layer may use, needing no model: errors, argument checks,
    # atomic writes, the network guard, lazy imports, the backend choice, the
    # compilation cache, returning freed memory, and the run folder's layout
    # (`kgpt2.load` reads a run's latest checkpoint, training writes it).
    ("kgpt2.errors", "kgpt2.checks", "kgpt2.atomic", "kgpt2.network", "kgpt2.lazy",
     "kgpt2.keras_backend", "kgpt2.compilation_cache", "kgpt2.heap", "kgpt2.runs"),
    ("kgpt2.presets",),
    ("kgpt2.data",),
    # KerasHub samplers and logits rules: generation builds on them.
    ("kgpt2.samplers",),
    ("kgpt2.training",),
    ("kgpt2.generation",),
    # What users run on top of the library: the server, the benchmarks and
    # the demo (it fine-tunes, then generates).
    ("kgpt2.serving", "kgpt2.bench", "kgpt2.demo"),
    ("kgpt2.cli", "kgpt2.__main__"),
)


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_package(name):
    return MODULES[name].name == "__init__.py"


def resolve(name):
    """The module that `import name` names: `name` itself, or its nearest parent in kgpt2."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def lazy_exports_table(name):
    """A package's `_EXPORTS = {name: module}` table, as given to `lazy_exports`."""
    if not is_package(name):
        return {}
    for node in ast.parse(MODULES[name].read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "_EXPORTS" for target in node.targets):
            return ast.literal_eval(node.value)
    return {}


def reach(module, attributes):
    """The kgpt2 module that `module.a.b...` gets to: a submodule, or a lazy export's module."""
    module = resolve(module)
    for attribute in attributes:
        if f"{module}.{attribute}" in MODULES:
            module = f"{module}.{attribute}"
        elif is_package(module) and attribute in lazy_exports_table(module):
            return resolve(lazy_exports_table(module)[attribute])
        else:
            break
    return module


def scan(name, source):
    """What module `name`, whose text is `source`, imports and which private names it uses.

    Returns ({imported kgpt2 module: first line}, ["line: private name"]).
    An `import kgpt2` counts as an import of each module that the code then
    reaches through it (`kgpt2.presets.load` reaches kgpt2.presets.loading).
    """
    tree = ast.parse(source)
    edges, private, aliases = {}, [], {}

    def add(target, line):
        if target is not None and target != name:
            edges.setdefault(target, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "kgpt2":
                    add(resolve(alias.name), node.lineno)
                    bound = alias.asname or alias.name.split(".")[0]
                    aliases[bound] = alias.name if alias.asname else "kgpt2"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kgpt2":
            for alias in node.names:
                target = reach(node.module, [alias.name])
                add(target, node.lineno)
                if _private(alias.name):
                    private.append(f"{node.lineno}: from {node.module} import {alias.name}")
                elif f"{node.module}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    attributes = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute)]
    inner = {id(node.value) for node in attributes}
    for node in attributes:
        chain = None if id(node) in inner else _chain(node)
        if not chain or chain[0] not in aliases:
            continue
        # The whole chain (`kgpt2.presets.load`), not its parts.
        add(reach(aliases[chain[0]], chain[1:]), node.lineno)
        if any(_private(attribute) for attribute in chain[1:]):
            private.append(f"{node.lineno}: {'.'.join(chain)}")
    return edges, private


def _chain(node):
    """["a", "b", "c"] for the expression `a.b.c`, or None when it does not start with a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id] + parts[::-1] if isinstance(node, ast.Name) else None


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


SCANS = {name: scan(name, path.read_text("utf-8")) for name, path in MODULES.items()}
GRAPH = {name: edges for name, (edges, _) in SCANS.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for target in graph.get(node, ()):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def layer(name):
    for rank, members in enumerate(LAYERS):
        if any(name == member or name.startswith(member + ".") for member in members):
            return rank
    return None


def test_the_scan_sees_function_level_lazy_and_private_uses():
    # The scan is only as good as what it reads: these must all show up.
    source = """
import kgpt2
from kgpt2 import runs


def f():
    from kgpt2.generation.text import generate
    from kgpt2.presets import _hidden
    return kgpt2.Recipe, runs._private, kgpt2.presets.catalog.names
"""
    edges, private = scan("kgpt2.x", source)
    assert {"kgpt2.generation.text", "kgpt2.presets", "kgpt2.training.recipe", "kgpt2.runs",
            "kgpt2.presets.catalog"} <= set(edges)
    assert [use.split(": ")[1] for use in private] == [
        "from kgpt2.presets import _hidden", "runs._private"]
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_private_name_is_used_across_modules():
    uses = [f"{MODULES[name].relative_to(ROOT)}:{use}" for name, (_, private) in SCANS.items()
            for use in private]
    assert uses == []


def test_every_module_has_a_layer():
    assert [name for name in MODULES if name != "kgpt2" and layer(name) is None] == []


@pytest.mark.parametrize("name", sorted(name for name in MODULES if name != "kgpt2"))
def test_lower_layers_never_import_higher_ones(name):
    higher = [f"{target} (line {line})" for target, line in GRAPH[name].items()
              if target != "kgpt2" and layer(target) > layer(name)]
    assert higher == [], f"{name} (layer {LAYERS[layer(name)]}) imports a higher layer"


def public_names(package):
    """The names in a package's `__all__`, read from its source (nothing is imported)."""
    for node in ast.parse(MODULES[package].read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets):
            # A literal list, or one built from the lazy table (`sorted([*_EXPORTS, ...])`).
            strings = [n.value for n in ast.walk(node.value)
                       if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            uses_table = any(isinstance(n, ast.Name) and n.id == "_EXPORTS" for n in ast.walk(node.value))
            return set(strings) | (set(lazy_exports_table(package)) if uses_table else set())
    return set()


def test_no_public_name_shadows_a_builtin():
    # README: `from kgpt2 import *` (or from a subpackage) never hides one.
    assert public_names("kgpt2") >= {"load", "generate", "finetune", "Error"}
    packages = [name for name in MODULES if is_package(name)]
    shadowing = [f"{package}.{name}" for package in packages for name in sorted(public_names(package))
                 if hasattr(builtins, name)]
    assert shadowing == []
