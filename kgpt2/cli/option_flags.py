"""Command-line flags generated from an `Options` dataclass: one mapping, defaults in `--help`.

Each field `some_option` becomes `--some-option`; its help is the field's
help plus its default, and an option the user did not give is left out of
the parsed arguments, so the dataclass's own default applies.
"""

import argparse
import dataclasses


def _flag(field):
    return "--" + field.name.replace("_", "-")


def _default_text(field):
    cli = field.metadata["cli"]
    if "default_text" in cli:
        return cli["default_text"]
    if field.default is None:
        return "none"
    if field.default == "":
        return "empty"
    return f"{field.default:g}" if isinstance(field.default, float) else str(field.default)


def _argparse_options(field):
    options = {k: v for k, v in field.metadata["cli"].items() if k not in ("group", "default_text")}
    if field.default is False and "action" not in options:
        options["action"] = "store_true"
    elif "type" not in options and "action" not in options:
        # An option off by default (None) takes a name, e.g. --distribution.
        options["type"] = str if field.default is None else type(field.default)
    return options


def add_option_flags(parser, options_class):
    """Add a flag for each field of `options_class` to `parser`.

    Example:
    ```python
    import argparse
    from kgpt2.cli.option_flags import add_option_flags, given_options
    from kgpt2.training import Recipe

    parser = argparse.ArgumentParser()
    add_option_flags(parser, Recipe)
    args = parser.parse_args(["--learning-rate", "1e-3"])
    print(given_options(args, Recipe))  # {'learning_rate': 0.001}
    ```
    """
    groups = {}
    for field in dataclasses.fields(options_class):
        cli = field.metadata["cli"]
        target = parser
        if "group" in cli:
            if cli["group"] not in groups:
                groups[cli["group"]] = parser.add_mutually_exclusive_group()
            target = groups[cli["group"]]
        help_text = field.metadata["help"].replace("%", "%%")
        target.add_argument(
            _flag(field),
            dest=field.name,
            default=argparse.SUPPRESS,
            help=f"{help_text} (default: {_default_text(field)})",
            **_argparse_options(field),
        )


def given_options(args, options_class):
    """The fields of `options_class` given on the command line, as a dict."""
    return {
        name: getattr(args, name)
        for name in options_class.field_names()
        if hasattr(args, name)
    }


class GivenOnce(argparse.Action):
    """An option that may be given once: a second value is refused, not
    silently used instead of the first.

    Example:
    ```python
    import argparse
    from kgpt2.cli.option_flags import GivenOnce

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", action=GivenOnce)
    print(parser.parse_args(["--data", "text:a.txt"]).data)  # text:a.txt
    # parser.parse_args(["--data", "text:a.txt", "--data", "text:b.txt"])
    # exits: argument --data: given twice ('text:a.txt' and 'text:b.txt')
    ```
    """

    def __call__(self, parser, namespace, values, option_string=None):
        earlier = getattr(namespace, self.dest, None)
        if earlier is not None and earlier is not self.default:
            parser.error(
                f"argument {option_string}: given twice ({earlier!r} and {values!r}); "
                f"give {option_string} once."
            )
        setattr(namespace, self.dest, values)
