"""Synthesize Kiln's CloudFormation templates offline: plain Python, no credentials, no lookups.

    python -m infra.cdk.synth --out cdk.out [-c key=value ...]

Writes the cloud assembly (``<stage>.template.json``, the assets, cdk-nag's reports) to --out
and exits 1 when a stack has an error annotation (cdk-nag's unsuppressed findings among them),
2 when a setting is wrong. The first run downloads the Lambda wheels (`chalice package`; cached
in .chalice/deployments)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _context(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"-c {pair!r}: expected key=value")
        found[key.strip()] = value
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.cdk.synth", description=__doc__)
    parser.add_argument("--out", default="cdk.out", help="the cloud assembly directory")
    parser.add_argument(
        "-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="a setting"
    )
    parser.add_argument("--quiet", action="store_true", help="no cdk-nag warnings listed")
    args = parser.parse_args(argv)
    context = _context(args.context)
    os.environ.setdefault("AWS_DEFAULT_REGION", context.get("region") or "us-east-1")
    # imported here: the environment above is read when the jsii runtime starts
    from infra.cdk import nag
    from infra.cdk.app import build_app
    from infra.cdk.settings import SettingsError

    started = time.monotonic()
    out = Path(args.out).resolve()
    try:
        app = build_app(context, str(out))
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    assembly = app.synth()
    for stack in assembly.stacks_recursively:
        print(f"{stack.stack_name}: {stack.template_full_path}")
    if not args.quiet:
        for warning in nag.warnings(assembly):
            print(f"warning {warning}", file=sys.stderr)
    errors = nag.errors(assembly)
    for error in errors:
        print(f"error {error}", file=sys.stderr)
    print(f"synthesized in {time.monotonic() - started:.1f}s to {out}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s): the templates must not be deployed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
