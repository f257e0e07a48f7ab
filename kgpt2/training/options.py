"""Frozen option sets that round-trip through dicts and document their fields.

`Recipe` (how a model is trained) and `RunOptions` (where a run is kept and
what it records) are both `Options`: each field is declared once with
`option(default, help)`, and everything else is derived from that
declaration: the keyword arguments of `kgpt2.finetune`, the `kgpt2
finetune` flags and their `--help` text, the dict stored in a checkpoint.
"""

import dataclasses

from kgpt2.errors import InputError


def option(default, help, **cli):
    """Declare an options field: its default, one line of help, CLI extras.

    `cli` holds extra `argparse.add_argument` keywords for the field's flag
    (e.g. `type=int` for a field whose default is None, `choices`,
    `nargs`); `group` names a set of mutually exclusive flags, and
    `default_text` replaces the default shown in `--help`.

    Example:
    ```python
    import dataclasses
    from kgpt2.training.options import Options, option

    @dataclasses.dataclass(frozen=True)
    class Tiny(Options):
        size: int = option(8, "how big")

    print(Tiny().to_dict())  # {'size': 8}
    ```
    """
    return dataclasses.field(default=default, metadata=dict(help=help, cli=cli))


class Options:
    """Shared behaviour of the frozen option dataclasses (`to_dict`, `from_dict`, `replace`)."""

    @classmethod
    def field_names(cls):
        """The names of the options, in declaration order."""
        return [field.name for field in dataclasses.fields(cls)]

    def to_dict(self):
        """The options as a plain dict of JSON-compatible values.

        Example:
        ```python
        from kgpt2.training import Recipe

        print(Recipe(learning_rate=1e-3).to_dict()["learning_rate"])  # 0.001
        ```
        """
        return {name: getattr(self, name) for name in self.field_names()}

    @classmethod
    def from_dict(cls, values):
        """Build options from a dict such as `to_dict()` returns.

        Raises:
            InputError: a key that is not one of the options (named), or an
                invalid value.

        Example:
        ```python
        from kgpt2.training import Recipe

        recipe = Recipe(lora_rank=4)
        print(Recipe.from_dict(recipe.to_dict()) == recipe)  # True
        ```
        """
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise InputError(
                f"{cls.__name__} has no option {', '.join(map(repr, unknown))}; "
                f"its options are {', '.join(cls.field_names())}."
            )
        return cls(**values)

    def replace(self, **changes):
        """A copy with `changes` applied (and validated).

        Example:
        ```python
        from kgpt2.training import Recipe

        print(Recipe().replace(steps=100).steps)  # 100
        ```
        """
        base = self.to_dict()
        return self.from_dict({**base, **changes})

    def _set(self, name, value):
        # Normalise a value during validation of a frozen instance.
        object.__setattr__(self, name, value)
