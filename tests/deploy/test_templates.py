"""The synthesized CloudFormation templates as CloudFormation would judge them: cfn-lint (the
resource specification: property names and types, allowed values, references) and cdk-nag
(run inside the synth: its unsuppressed errors fail it; each suppression says why)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from cfnlint.api import lint

from infra.deploy_check import REGION, Synth

MIN_REASON = 20  # characters a cdk-nag suppression's reason must have


def _lint(template: dict[str, Any]) -> tuple[list[str], list[str]]:
    """cfn-lint's errors and its warnings (informational findings left out)."""
    errors, warnings = [], []
    for match in lint(json.dumps(template, indent=1), regions=[REGION]):
        where = "/".join(str(part) for part in match.path) if match.path else ""
        line = f"{match.rule.id} {where}: {match.message}"
        if match.rule.id.startswith("E"):
            errors.append(line)
        elif match.rule.id.startswith("W"):
            warnings.append(line)
    return errors, warnings


def test_the_synth_reports_no_unsuppressed_cdk_nag_error(synth: Synth) -> None:
    """infra/cdk/synth.py exits 1 on an error annotation (an unsuppressed cdk-nag finding
    among them), 2 on a wrong setting."""
    assert synth.returncode == 0, synth.output[-6000:]
    print(f"synth: {synth.seconds} s (0 when cached from an earlier session)")


def test_cfn_lint_finds_no_error_in_any_template(templates: dict[str, dict[str, Any]]) -> None:
    found = {}
    for name, template in templates.items():
        errors, warnings = _lint(template)
        for warning in warnings:
            print(f"cfn-lint warning in {name}: {warning}")
        if errors:
            found[name] = errors
    assert not found, "\n".join(f"{name}: {e}" for name, errors in found.items() for e in errors)


def test_cfn_lint_does_find_errors() -> None:
    """The check above checks something: a queue with a string visibility timeout and a
    table keyed on an undefined attribute are refused."""
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": "soon"}},
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "BillingMode": "PAY_PER_REQUEST",
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "Q"}],
                },
            },
        }
    }
    errors, _ = _lint(template)
    assert any("VisibilityTimeout" in e for e in errors), errors
    assert any("AttributeType" in e for e in errors), errors


def _suppressions(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each cdk-nag suppression: (where, the suppression); stack-level ones too."""
    stack_level = template.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    for rule in stack_level:
        yield "(stack)", rule
    for logical, resource in template.get("Resources", {}).items():
        metadata = resource.get("Metadata", {}).get("cdk_nag", {})
        for rule in metadata.get("rules_to_suppress", []):
            yield logical, rule


def test_every_cdk_nag_suppression_gives_a_reason(templates: dict[str, dict[str, Any]]) -> None:
    """A suppression is a decision someone must be able to review: its reason says why the
    rule does not apply (at least 20 characters, not the rule's id again)."""
    bad, count = [], 0
    for name, template in templates.items():
        for where, rule in _suppressions(template):
            count += 1
            reason = " ".join(str(rule.get("reason", "")).split())
            if len(reason) < MIN_REASON or reason.lower() == str(rule.get("id", "")).lower():
                bad.append(f"{name} {where} {rule.get('id')}: reason {reason!r}")
            if not rule.get("id"):
                bad.append(f"{name} {where}: a suppression without a rule id: {rule}")
    print(f"{count} cdk-nag suppressions, each with a reason")
    assert not bad, "\n".join(bad)
