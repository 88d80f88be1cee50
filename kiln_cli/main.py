"""``kiln``: the command group, ``kiln login``, and the one place errors become a line on
stderr (``kiln: error: ...``) and an exit code (kiln_cli/errors.py, docs/cli.md)."""

from __future__ import annotations

import os
import sys
import traceback

import click

from kiln_cli import __version__
from kiln_cli.cachito import sources_command
from kiln_cli.client import KILN, KilnClient
from kiln_cli.composer import compose_command
from kiln_cli.config import Connection, normalized_url, save_login
from kiln_cli.errors import API_ERROR, USAGE, one_line
from kiln_cli.glance import image_group
from kiln_cli.ims import build_command
from kiln_cli.invocation import Invocation, output_option, pass_invocation
from kiln_cli.jobs import cancel_command, jobs_group, logs_command
from kiln_cli.omps import operator_group

DEBUG_ENV = "KILN_DEBUG"  # set: an unexpected error shows its traceback too


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", help="Kiln's API root (else KILN_URL, the login, stack.json).")
@click.option("--token", help="The bearer token (else KILN_TOKEN, the login, stack.json).")
@output_option
@click.version_option(__version__, prog_name="kiln")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None) -> None:
    """Kiln from a terminal: builds, composes, images, source bundles, operators."""
    invocation = ctx.ensure_object(Invocation)
    invocation.url_flag, invocation.token_flag = url, token


@cli.command("login")
@click.option("--url", "login_url", required=True, help="Kiln's API root, e.g. http://host:8000")
@click.option("--token", "login_token", required=True, help="Your bearer token.")
@click.option("--no-verify", is_flag=True, help="Save without checking the token first.")
@output_option
@pass_invocation
def login_command(
    invocation: Invocation, login_url: str, login_token: str, no_verify: bool
) -> None:
    """Save the URL and token kiln uses (checked against Kiln first)."""
    url = normalized_url(login_url)
    if not no_verify:
        KilnClient(Connection(url, login_token, "flag", "flag")).get(f"{KILN}/builds", limit=1)
    path = save_login(url, login_token)
    if invocation.output.json_mode:
        invocation.output.json({"url": url, "config": str(path), "verified": not no_verify})
    else:
        invocation.output.line(f"logged in to {url} (saved to {path})")


cli.add_command(build_command)
cli.add_command(compose_command)
cli.add_command(image_group)
cli.add_command(sources_command)
cli.add_command(operator_group)
cli.add_command(jobs_group)
cli.add_command(logs_command)
cli.add_command(cancel_command)


def report(message: str) -> None:
    click.echo(f"kiln: error: {one_line(message)}", err=True)


def usage_message(error: click.UsageError) -> str:
    hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
    return f"{error.format_message()}{hint}"


def main() -> None:
    """The console script: run ``kiln``, exit with its code; errors as one line each."""
    try:
        result = cli.main(prog_name="kiln", standalone_mode=False, obj=Invocation())
    except click.exceptions.NoArgsIsHelpError as no_args:
        no_args.show()
        sys.exit(USAGE)
    except click.UsageError as usage:
        report(usage_message(usage))
        sys.exit(usage.exit_code)
    except click.ClickException as error:  # KilnError and click's own (a file it cannot open)
        report(error.format_message())
        sys.exit(error.exit_code)
    except click.Abort:
        report("interrupted")
        sys.exit(130)
    except Exception as unexpected:  # a bug of kiln's: one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        report(f"unexpected {type(unexpected).__name__}: {unexpected} (set {DEBUG_ENV}=1)")
        sys.exit(API_ERROR)
    sys.exit(result if isinstance(result, int) else 0)
