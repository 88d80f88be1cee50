"""The build state machine: the same ASL file the local stack runs (infra/statemachines),
rendered by infra/resources.py with the queue URLs as CloudFormation values."""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from chalicelib.config import ARCHES, BUILD_EVENTS_QUEUE, build_queue_name
from infra import resources
from infra.cdk import nag
from infra.cdk.settings import DeploySettings


class BuildWorkflow(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: DeploySettings,
        key: kms.IKey,
        queues: Mapping[str, sqs.IQueue],
    ) -> None:
        super().__init__(scope, id)
        targets = [queues[build_queue_name(arch)] for arch in ARCHES]
        targets.append(queues[BUILD_EVENTS_QUEUE])
        # the role may send to the build queues and the build-events queue, nothing else
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Kiln build state machine: send to the build and build-events queues",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sqs:SendMessage"], resources=[queue.queue_arn for queue in targets]
            )
        )
        # the queues are encrypted with the key: sending needs a data key
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]
            )
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{resources.STATE_MACHINE_NAME}",
            retention=settings.log_retention,
            encryption_key=key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        # CDK tokens stand in for the queue URLs; they resolve to Refs/GetAtts in the template
        urls = {name: queue.queue_url for name, queue in queues.items()}
        definition = resources.render_state_machine(
            resources.state_machine_substitutions(urls, resources.Timing())
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=resources.STATE_MACHINE_NAME,
            definition_body=sfn.DefinitionBody.from_string(definition),
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        # the L2 also makes the state machine depend on the role, which its RoleArn GetAtt does
        # already (cfn-lint W3005): only the role's policy needs DependsOn
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        cfn_machine: sfn.CfnStateMachine = self.state_machine.node.default_child  # type: ignore[assignment]
        cfn_machine.add_override("DependsOn", [cdk.Stack.of(self).get_logical_id(policy)])  # type: ignore[arg-type]
        nag.suppress(
            self.role,
            "AwsSolutions-IAM5",
            "Step Functions' log delivery (logs:CreateLogDelivery, ...) and X-Ray "
            "(xray:PutTraceSegments, ...) APIs have no resource-level permissions: AWS documents "
            "Resource '*' for both; every other statement names its queues and key",
            applies_to=["Resource::*"],
            children=True,
        )
