"""Kiln's state machine judged by a real Amazon States Language validator (npm's
asl-validator, package.json): as rendered for `make up` and as the synthesized template
deploys it. moto's Step Functions takes any definition; CreateStateMachine does not."""

from __future__ import annotations

import json
from typing import Any

from infra import resources
from infra.deploy_check import asl
from infra.deploy_check.compare import normalise_queue_urls

FAKE_URLS = {
    spec.name: f"https://sqs.{asl.FAKE_REGION}.amazonaws.com/{asl.FAKE_ACCOUNT}/{spec.name}"
    for spec in resources.queues()
}


def _rendered() -> dict[str, Any]:
    return dict(
        json.loads(
            resources.render_state_machine(
                resources.state_machine_substitutions(FAKE_URLS, resources.Timing())
            )
        )
    )


def _deployed_definitions(templates: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each state machine's definition in the templates, intrinsics resolved to fake values."""
    found = {}
    for name, template in templates.items():
        queues = {  # Ref of a queue: its URL
            logical: FAKE_URLS.get(resource["Properties"]["QueueName"], "")
            for logical, resource in template.get("Resources", {}).items()
            if resource.get("Type") == "AWS::SQS::Queue"
            and isinstance(resource.get("Properties", {}).get("QueueName"), str)
        }
        for logical, resource in template.get("Resources", {}).items():
            if resource.get("Type") != "AWS::StepFunctions::StateMachine":
                continue
            properties = resource["Properties"]
            assert "DefinitionS3Location" not in properties, f"{logical}: definition in S3"
            if "Definition" in properties:
                text = json.dumps(asl.resolve_intrinsics(properties["Definition"], queues))
            else:
                text = asl.resolve_intrinsics(properties["DefinitionString"], queues)
            substitutions = properties.get("DefinitionSubstitutions", {})
            for key, value in substitutions.items():
                text = text.replace("${" + key + "}", str(asl.resolve_intrinsics(value, queues)))
            found[f"{name}/{logical}"] = json.loads(text)
    return found


def test_the_rendered_state_machine_is_valid_asl() -> None:
    verdict = asl.validate(_rendered())
    assert verdict.valid, verdict.report


def test_a_string_where_asl_wants_a_number_is_refused() -> None:
    """What CreateStateMachine refuses and moto takes: ``"HeartbeatSeconds": "60"``. Kiln's
    rendered definition has numbers there (render_state_machine keeps them numbers)."""
    definition = _rendered()
    assert definition["States"]["Build_x86_64"]["HeartbeatSeconds"] == 60
    definition["States"]["Build_x86_64"]["HeartbeatSeconds"] = "60"
    verdict = asl.validate(definition)
    assert not verdict.valid
    assert "HeartbeatSeconds" in verdict.report, verdict.report


def test_the_unrendered_file_is_refused() -> None:
    """The ASL file itself has "${HeartbeatSeconds}" placeholders: deployed as it is, Step
    Functions would refuse it; the validator agrees."""
    verdict = asl.validate(resources.STATE_MACHINE_FILE.read_text(encoding="utf-8"))
    assert not verdict.valid


def test_an_unreachable_state_and_a_missing_next_are_refused() -> None:
    definition = _rendered()
    definition["States"]["Orphan"] = {"Type": "Pass", "End": True}
    assert not asl.validate(definition).valid
    definition = _rendered()
    definition["States"]["ReportSuccess"]["Next"] = "NoSuchState"
    del definition["States"]["ReportSuccess"]["End"]
    assert not asl.validate(definition).valid


def test_the_synthesized_state_machine_is_valid_asl(templates: dict[str, dict[str, Any]]) -> None:
    definitions = _deployed_definitions(templates)
    assert len(definitions) == 1, sorted(definitions)
    for where, definition in definitions.items():
        verdict = asl.validate(definition)
        assert verdict.valid, f"{where}: {verdict.report}"


def test_the_synthesized_state_machine_is_the_rendered_one(
    templates: dict[str, dict[str, Any]],
) -> None:
    """The same states as `make up` runs, each sending to the same queue (by name)."""
    (deployed,) = _deployed_definitions(templates).values()
    assert json.loads(normalise_queue_urls(json.dumps(deployed))) == json.loads(
        normalise_queue_urls(json.dumps(_rendered()))
    )
