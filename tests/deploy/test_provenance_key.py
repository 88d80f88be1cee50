"""The provenance signing key in the synthesized template (docs/provenance.md): an asymmetric
ECC_NIST_P256 SIGN_VERIFY key behind its alias, kept on stack deletion; kms:Sign only for the
build-events function, kms:GetPublicKey for it and the API; nothing for the build hosts."""

from __future__ import annotations

import json
from typing import Any

from infra.resources import PROVENANCE_KEY_ALIAS


def _resources(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for template in templates.values():
        found.update(template.get("Resources", {}))
    return found


def _actions(policies: Any, key_logical: str) -> set[str]:
    """The KMS actions the role's inline policies grant on the key."""
    granted: set[str] = set()
    for policy in policies or []:
        for statement in policy["PolicyDocument"]["Statement"]:
            if key_logical in json.dumps(statement.get("Resource")):
                actions = statement["Action"]
                granted |= set([actions] if isinstance(actions, str) else actions)
    return granted


def test_the_signing_key_and_who_may_use_it(templates: dict[str, dict[str, Any]]) -> None:
    resources = _resources(templates)
    (alias,) = [
        r for r in resources.values()
        if r["Type"] == "AWS::KMS::Alias" and r["Properties"]["AliasName"] == PROVENANCE_KEY_ALIAS
    ]  # fmt: skip
    key_logical = alias["Properties"]["TargetKeyId"]["Fn::GetAtt"][0]
    key = resources[key_logical]
    assert key["Properties"]["KeySpec"] == "ECC_NIST_P256"
    assert key["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    assert key["DeletionPolicy"] == "Retain"
    granted = {
        logical: _actions(resource["Properties"].get("Policies"), key_logical)
        for logical, resource in resources.items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert granted.pop("OnBuildEventRole") == {"kms:Sign", "kms:GetPublicKey"}
    assert granted.pop("ApiHandlerRole") == {"kms:GetPublicKey"}
    assert not any(granted.values()), {k: v for k, v in granted.items() if v}
    managed = [
        logical for logical, r in resources.items()
        if r["Type"] == "AWS::IAM::Policy" and key_logical in json.dumps(r["Properties"])
    ]  # fmt: skip
    assert not managed, managed  # no other role (a build host's) is granted the key
    for function in ("OnBuildEvent", "APIHandler"):
        env = resources[function]["Properties"]["Environment"]["Variables"]
        assert env["KILN_PROVENANCE_KEY"] == {"Fn::GetAtt": [key_logical, "Arn"]}, function
