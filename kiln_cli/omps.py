"""``kiln operator push``: an operator manifest zip pushed through the OMPS face (v2: the
package name is the repository), as OSBS pushes it."""

from __future__ import annotations

import zipfile
from pathlib import Path
from urllib.parse import quote

import click

from kiln_cli.client import OMPS
from kiln_cli.errors import BadInput
from kiln_cli.invocation import Invocation, output_option, pass_invocation


@click.group("operator")
def operator_group() -> None:
    """Operator manifests (the OMPS face)."""


@operator_group.command("push")
@click.argument(
    "zip_file", metavar="ZIP", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.argument("organization", metavar="ORG")
@click.option("--version", help="The release's version (default: the next major one).")
@output_option
@pass_invocation
def push_command(
    invocation: Invocation, zip_file: Path, organization: str, version: str | None
) -> None:
    """Push the operator manifests in ZIP to organization ORG."""
    if not zipfile.is_zipfile(zip_file):
        raise BadInput(f"{zip_file} is not a zip archive")
    client, output = invocation.client(), invocation.output
    path = f"{OMPS}/{quote(organization, safe='')}/zipfile"
    if version:
        path += f"/{quote(version, safe='')}"
    with zip_file.open("rb") as archive:
        files = {"file": (zip_file.name, archive, "application/zip")}
        pushed = client.json("POST", path, files=files)
    if output.json_mode:
        output.json(pushed)
        return
    output.note(
        f"pushed {pushed.get('repo')} {pushed.get('version')} to {pushed.get('organization')}",
        "green",
    )
    output.fields(pushed, ["organization", "repo", "version", "extracted_files"])
