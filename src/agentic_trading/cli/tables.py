"""One table renderer for every list the CLI prints.

On a terminal it keeps ids and names whole and, when the table is wider than the terminal,
hides the least useful columns first (``--wide`` keeps them all and lets the terminal wrap).
In a pipe or a file it prints plain aligned columns with whole values and no styling, as
``docker ps`` and ``kubectl get`` do, so that any value can be cut out and passed on; ``--json``
is for scripts that want structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["Cell", "Column", "WideOption", "print_table"]

#: A cell: plain text, or styled text (never read as markup).
Cell = str | Text

#: ``--wide``: every column, even wider than the terminal.
WideOption = Annotated[
    bool, typer.Option("--wide", help="Every column, even when wider than the terminal.")
]


@dataclass(frozen=True)
class Column:
    """A column: its header, alignment, whether its values are kept whole (ids, names), and
    when it is hidden on a narrow terminal (``drop``: 0 never; higher numbers first)."""

    header: str
    justify: Literal["left", "right"] = "left"
    whole: bool = False
    drop: int = 0


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def print_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    caption: str | None = None,
    wide: bool = False,
) -> None:
    """Print ``rows`` under ``columns`` on ``console`` (see the module's docstring)."""
    if not console.is_terminal:
        _print_plain(console, columns, rows)
        return
    widths = [
        max([len(column.header), *(len(_plain(row[i])) for row in rows)])
        for i, column in enumerate(columns)
    ]
    shown = list(range(len(columns)))
    hidden: list[str] = []
    if not wide:
        while _table_width(widths, shown) > console.width:
            droppable = [i for i in shown if columns[i].drop]
            if not droppable:
                break
            worst = max(droppable, key=lambda i: (columns[i].drop, i))
            shown.remove(worst)
            hidden.append(columns[worst].header)
    notes = [caption] if caption else []
    if hidden:
        notes.append(f"{len(hidden)} column(s) hidden to fit: {', '.join(hidden)} (--wide)")
    table = Table(title=title, caption="; ".join(notes) or None, title_justify="left")
    for i in shown:
        column = columns[i]
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=column.whole,
            min_width=widths[i] if column.whole else None,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(_cell(row[i]) for i in shown))
    if wide:  # as wide as the table needs; the terminal wraps the lines
        width = console.width
        console.width = max(width, _table_width(widths, shown))
        try:
            console.print(table, crop=False)
        finally:
            console.width = width
    else:
        console.print(table)


def _cell(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _table_width(widths: Sequence[int], shown: Sequence[int]) -> int:
    # Rich's default box: a border and one space of padding each side per column.
    return sum(widths[i] + 3 for i in shown) + 1


def _print_plain(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]
) -> None:
    table = [[c.header for c in columns], *([_plain(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        cells = [
            value.rjust(widths[i]) if columns[i].justify == "right" else value.ljust(widths[i])
            for i, value in enumerate(line)
        ]
        console.out("  ".join(cells).rstrip(), highlight=False)
