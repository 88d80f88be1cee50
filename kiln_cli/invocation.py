"""One run of ``kiln``: the global flags, the output mode, and the client made from them when a
command first needs it (so ``--help`` and usage errors never read any configuration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from kiln_cli.client import KilnClient
from kiln_cli.config import resolve
from kiln_cli.output import Output

Command = TypeVar("Command", bound=Callable[..., Any])


class Invocation:
    def __init__(self, url_flag: str | None = None, token_flag: str | None = None) -> None:
        self.url_flag = url_flag
        self.token_flag = token_flag
        self.json_output = False
        self._client: KilnClient | None = None
        self._output: Output | None = None

    def client(self) -> KilnClient:
        if self._client is None:
            self._client = KilnClient(resolve(self.url_flag, self.token_flag))
        return self._client

    @property
    def output(self) -> Output:
        if self._output is None or self._output.json_mode != self.json_output:
            self._output = Output(self.json_output)
        return self._output


def _set_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        invocation = ctx.find_object(Invocation)
        if invocation is not None:
            invocation.json_output = value == "json"


def output_option(command: Command) -> Command:
    """``-o/--output text|json`` on a command (as on ``kiln`` itself)."""
    option = click.option(
        "-o",
        "--output",
        type=click.Choice(["text", "json"]),
        default=None,
        expose_value=False,
        callback=_set_output,
        help="json: machine-readable output on stdout, no progress display.",
    )
    return option(command)


pass_invocation = click.make_pass_decorator(Invocation)
