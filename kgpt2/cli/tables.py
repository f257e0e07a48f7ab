"""Tables on the terminal, with `rich`: how every `kgpt2` command prints data.

Library functions return data (dataclasses, lists); the commands turn them
into tables here. Numeric columns are right-aligned. When the output is not
a terminal (a pipe, a file, a test), lines are not cut at 80 characters.

Example:
```python
from kgpt2.cli.tables import print_table

print_table("Presets", ["name", "params"], [["gpt2_tiny_random", "2,000"]], numeric={"params"})
```
"""

from rich.console import Console
from rich.table import Table

# Wide enough for the widest table (`kgpt2 bench` with several series).
UNCUT_WIDTH = 250


def console():
    """Return a rich console on standard output (uncut when it is not a terminal)."""
    terminal = Console()
    return terminal if terminal.is_terminal else Console(width=UNCUT_WIDTH)


def print_table(title, columns, rows, numeric=(), caption=None):
    """Print `rows` (lists of cells, any type) under `columns` as one table.

    Args:
        title: shown above the table (None for none).
        columns: the column headers.
        rows: one list of cells per row; cells are printed with `str`.
        numeric: the headers of right-aligned columns.
        caption: a note shown under the table.
    """
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console().print(table)


def print_lines(*lines):
    """Print plain lines on the same console as the tables (no markup)."""
    output = console()
    for line in lines:
        output.print(line, markup=False, highlight=False, soft_wrap=True)
