"""cdk-nag's AWS Solutions checks on the whole app; every suppression is made here or through
``suppress`` next to the resource, each with the reason it is acceptable."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import cx_api
from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions
from constructs import IConstruct


def attach(app: cdk.App) -> None:
    """Every stack of ``app`` is checked at synth; findings become error/warning annotations."""
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))


def suppress(
    construct: IConstruct,
    rule: str,
    reason: str,
    applies_to: Sequence[str] | None = None,
    children: bool = False,
) -> None:
    """One rule suppressed on ``construct`` (and its children when ``children``), with why."""
    NagSuppressions.add_resource_suppressions(
        construct,
        [NagPackSuppression(id=rule, reason=reason, applies_to=list(applies_to or []) or None)],
        apply_to_children=children,
    )


def errors(assembly: cx_api.CloudAssembly) -> list[str]:
    """The error annotations of every stack (cdk-nag's unsuppressed findings among them)."""
    found = []
    for stack in assembly.stacks_recursively:
        for message in stack.messages:
            if message.level == cx_api.SynthesisMessageLevel.ERROR:
                found.append(f"{message.id}: {message.entry.data}")
    return found


def warnings(assembly: cx_api.CloudAssembly) -> list[str]:
    found = []
    for stack in assembly.stacks_recursively:
        for message in stack.messages:
            if message.level == cx_api.SynthesisMessageLevel.WARNING:
                found.append(f"{message.id}: {message.entry.data}")
    return found
