"""What moto's CloudFormation does not do as AWS does, and how the smoke deploy makes up for
it (each change is listed in ``Deployment.adaptations``; docs/deploy-checks.md):

- resource types it does not implement are not created (``unsupported_types``: reported);
- AWS's public SSM parameters (``/aws/service/...``: AMI ids) do not exist: a known moto AMI;
- a RestApi's ``Body`` (the OpenAPI from `chalice package`) is ignored and ``Name`` required: the
  name is taken from the Body's title, and its Deployment and Stage (which fail on an API
  without methods) are dropped;
- a bucket's NotificationConfiguration and a table's TimeToLiveSpecification are ignored: they
  are put through the API after CreateStack, with their ARNs resolved;
- the state machine is created in the Step Functions backend that does not execute: it is
  created again, as deployed, in the one that does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from infra.deploy_check import ACCOUNT, REGION


class DeployFailed(RuntimeError):
    pass


#: an image moto's EC2 knows, for AMI ids AWS's public SSM parameters would give
MOTO_AMI = "ami-785db401"


def unsupported_types(template: dict[str, Any]) -> set[str]:
    """Resource types in the template that moto's CloudFormation does not create."""
    from moto.cloudformation.parsing import get_model_map

    supported = set(get_model_map()) | {"AWS::CloudFormation::WaitConditionHandle"}
    types = {r.get("Type", "") for r in template.get("Resources", {}).values()}
    return {t for t in types if t not in supported and not t.startswith("Custom::")} | {
        t for t in types if t.startswith("Custom::") or t == "AWS::CloudFormation::CustomResource"
    }


def adapt_for_moto(template: dict[str, Any]) -> list[str]:
    """Fills in what AWS derives but moto's CloudFormation insists on (changing nothing AWS
    would create); returns what was filled in."""
    notes = []
    for name, parameter in template.get("Parameters", {}).items():
        value_type, default = parameter.get("Type", ""), str(parameter.get("Default", ""))
        if value_type.startswith("AWS::SSM::Parameter::Value<") and default.startswith("/aws/"):
            # AWS's public parameters (e.g. /aws/service/debian/...): moto has none of them
            is_image = "AWS::EC2::Image::Id" in value_type
            parameter["Type"], parameter["Default"] = "String", MOTO_AMI if is_image else "none"
            notes.append(f"parameter {name}: {default} -> {parameter['Default']}")
    for logical, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::ApiGateway::RestApi" and "Name" not in properties:
            # AWS names a RestApi from its Body's info.title; moto needs Name
            title = properties.get("Body", {}).get("info", {}).get("title", logical)
            properties["Name"] = title
            resource["Properties"] = properties
            notes.append(f"{logical}: RestApi Name {title!r} (from Body.info.title)")
    # moto ignores a RestApi's Body (its OpenAPI): the API has no methods, and a Deployment of
    # it fails ("The REST API doesn't contain any methods"): its Deployment and Stage go
    with_body = {
        logical
        for logical, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::ApiGateway::RestApi"
        and "Body" in resource.get("Properties", {})
    }
    dropped = {
        logical
        for logical, resource in template.get("Resources", {}).items()
        if resource.get("Type") in ("AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage")
        and resource.get("Properties", {}).get("RestApiId", {}).get("Ref") in with_body
    }
    for logical in sorted(dropped):
        del template["Resources"][logical]
        notes.append(f"{logical}: dropped (moto does not import the RestApi's Body)")
    for resource in template.get("Resources", {}).values():
        depends = resource.get("DependsOn")
        if isinstance(depends, str) and depends in dropped:
            del resource["DependsOn"]
        elif isinstance(depends, list):
            resource["DependsOn"] = [d for d in depends if d not in dropped]
    outputs = template.get("Outputs", {})
    for name in [n for n, v in outputs.items() if any(d in json.dumps(v) for d in dropped)]:
        del outputs[name]
    return notes


def carry_state_machines(sfn: Any, enable_execution: Callable[[], None]) -> list[str]:
    """moto's CloudFormation creates a state machine in the Step Functions backend that does not
    execute; with execution on, the API serves another backend. Each deployed state machine
    is created there again, as deployed (name, resolved definition, role), then execution is
    turned on."""
    machines = [
        sfn.describe_state_machine(stateMachineArn=listed["stateMachineArn"])
        for listed in sfn.list_state_machines()["stateMachines"]
    ]
    enable_execution()
    for machine in machines:
        sfn.create_state_machine(
            name=machine["name"],
            definition=machine["definition"],
            roleArn=machine["roleArn"],
            type=machine.get("type", "STANDARD"),
        )
    return [f"{m['name']}: created again in moto's executing Step Functions" for m in machines]


#: a bucket's NotificationConfiguration in CloudFormation's shape -> PutBucketNotification's
_NOTIFICATION_KINDS = {
    "QueueConfigurations": ("Queue", "QueueArn"),
    "TopicConfigurations": ("Topic", "TopicArn"),
    "LambdaConfigurations": ("Function", "LambdaFunctionArn"),
}


def apply_bucket_notifications(
    template: dict[str, Any], stack: dict[str, tuple[str, str]], s3: Any
) -> list[str]:
    """moto's CloudFormation ignores a bucket's NotificationConfiguration: it is put with
    PutBucketNotificationConfiguration, its ARNs resolved against the deployed resources."""
    notes = []
    for logical, resource in template.get("Resources", {}).items():
        cfn = resource.get("Properties", {}).get("NotificationConfiguration")
        if resource.get("Type") != "AWS::S3::Bucket" or not cfn or logical not in stack:
            continue
        api: dict[str, Any] = {}
        for kind, (field, arn_field) in _NOTIFICATION_KINDS.items():
            for entry in cfn.get(kind, []):
                converted: dict[str, Any] = {
                    arn_field: _arn(entry[field], stack),
                    "Events": [entry["Event"]],
                }
                rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules")
                if rules:
                    converted["Filter"] = {"Key": {"FilterRules": rules}}
                target = "LambdaFunctionConfigurations" if kind == "LambdaConfigurations" else kind
                api.setdefault(target, []).append(converted)
        s3.put_bucket_notification_configuration(
            Bucket=stack[logical][1], NotificationConfiguration=api
        )
        notes.append(f"{logical}: NotificationConfiguration put after CreateStack")
    return notes


def apply_time_to_live(
    template: dict[str, Any], stack: dict[str, tuple[str, str]], dynamodb: Any
) -> list[str]:
    """moto's CloudFormation ignores a table's TimeToLiveSpecification: UpdateTimeToLive."""
    notes = []
    for logical, resource in template.get("Resources", {}).items():
        ttl = resource.get("Properties", {}).get("TimeToLiveSpecification")
        if resource.get("Type") != "AWS::DynamoDB::Table" or not ttl or logical not in stack:
            continue
        dynamodb.update_time_to_live(
            TableName=stack[logical][1],
            TimeToLiveSpecification={
                "Enabled": bool(ttl.get("Enabled", False)),
                "AttributeName": ttl["AttributeName"],
            },
        )
        notes.append(f"{logical}: TimeToLiveSpecification put after CreateStack")
    return notes


def _arn(value: Any, stack: dict[str, tuple[str, str]]) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical, attribute = value["Fn::GetAtt"]
        kind, physical = stack[logical]
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical.rsplit('/', 1)[1]}"
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in stack:
        return stack[value["Ref"]][1]
    raise DeployFailed(f"cannot resolve the notification target {value}")
