"""`python -m kgpt2` is the `kgpt2` command."""

from kgpt2.cli import entry

entry()
