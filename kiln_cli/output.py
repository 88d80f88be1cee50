"""What ``kiln`` shows: results on stdout (rich tables, or JSON with ``-o json``), progress,
live displays and notes on stderr (none of them with ``-o json``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

#: the width of output that is not a terminal's (a pipe, a file): wide enough for ids and
#: hashes on one line; COLUMNS still decides where it is set
PIPE_WIDTH = 240


def width_for(stream: object) -> int | None:
    """None (rich's own choice) for a terminal or with COLUMNS set, else PIPE_WIDTH."""
    isatty = getattr(stream, "isatty", None)
    if "COLUMNS" in os.environ or (callable(isatty) and isatty()):
        return None
    return PIPE_WIDTH


def human_size(size: object) -> str:
    """``1.5 MiB`` for a byte count; ``-`` for none."""
    if not isinstance(size, int | float) or isinstance(size, bool):
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


def cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class Output:
    """The two streams: ``console`` (stdout, results) and ``status`` (stderr, everything else).
    With ``json_mode`` results are JSON documents and nothing but errors goes to stderr."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.console = Console(highlight=False, width=width_for(sys.stdout))
        self.status = Console(
            stderr=True, highlight=False, quiet=json_mode, width=width_for(sys.stderr)
        )

    def json(self, document: Any) -> None:
        click.echo(json.dumps(document, indent=2, default=str))

    def line(self, text: str) -> None:
        """A plain line of the result (text mode only)."""
        if not self.json_mode:
            self.console.out(text, highlight=False)

    def note(self, message: str, style: str = "") -> None:
        """A remark on stderr, for people (text mode only)."""
        self.status.print(Text(message, style=style), soft_wrap=True)

    def table(
        self, columns: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None
    ) -> None:
        table = Table(title=title, show_edge=False, header_style="bold")
        for index, column in enumerate(columns):
            table.add_column(column, no_wrap=index == 0, overflow="fold")
        for row in rows:
            table.add_row(*(cell(value) for value in row))
        self.console.print(table)

    def fields(self, record: dict[str, Any], names: Sequence[str] | None = None) -> None:
        """One record as NAME  VALUE lines (``names``: these, in this order; else all)."""
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for name in names or list(record):
            if name in record:
                table.add_row(name, cell(record[name]))
        self.console.print(table)

    def transfer_progress(self) -> Progress:
        """Progress bars for bytes moving (disabled with ``-o json``)."""
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.status,
            disable=self.json_mode,
        )
