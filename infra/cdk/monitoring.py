"""CloudWatch alarms: dead letters, failed or timed-out builds, API 5XX, Lambda errors,
provenance left unsigned; an SNS topic (email) for them when an alarm_email is set."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.cdk.settings import DeploySettings

PERIOD = cdk.Duration.minutes(5)


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: DeploySettings,
        key: kms.Key,
        dead_letter_queues: dict[str, sqs.IQueue],
        state_machine: sfn.IStateMachine,
        api_name: str,
        api_stage: str,
        functions: dict[str, str],
    ) -> None:
        """``functions``: function name (chalice's) -> its FunctionName (a Ref)."""
        super().__init__(scope, id)
        self.topic: sns.Topic | None = None
        if settings.alarm_email:
            # CloudWatch publishes to the encrypted topic: it needs the key
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=["*"],  # in a key policy "*" is this key
                )
            )
            self.topic = sns.Topic(
                self, "Alarms", display_name="Kiln alarms", master_key=key, enforce_ssl=True
            )
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        self.alarms: list[cloudwatch.Alarm] = []
        for queue_name, queue in dead_letter_queues.items():
            self._alarm(
                f"DeadLetters{_camel(queue_name)}",
                queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum"
                ),
                f"{queue_name}-dlq holds messages: they failed {queue_name}'s handler "
                "repeatedly (the cleanup schedule reports them)",
            )
        self._alarm(
            "BuildsFailed",
            state_machine.metric_failed(period=PERIOD, statistic="Sum"),
            "build state machine executions failed",
        )
        self._alarm(
            "BuildsTimedOut",
            state_machine.metric_timed_out(period=PERIOD, statistic="Sum"),
            "build state machine executions timed out",
        )
        self._alarm(
            "Api5xx",
            cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="5XXError",
                dimensions_map={"ApiName": api_name, "Stage": api_stage},
                period=PERIOD,
                statistic="Sum",
            ),
            "the API answered 5XX",
        )
        self._alarm(
            "ProvenanceFailed",
            cloudwatch.Metric(
                namespace="Kiln",  # chalicelib/observability.py, with Powertools' service
                metric_name="ProvenanceFailed",
                dimensions_map={"service": "kiln"},
                period=PERIOD,
                statistic="Sum",
            ),
            "a job succeeded without signed provenance (KMS could not sign; docs/provenance.md)",
        )
        for name, function_name in functions.items():
            self._alarm(
                f"Errors{_camel(name)}",
                cloudwatch.Metric(
                    namespace="AWS/Lambda",
                    metric_name="Errors",
                    dimensions_map={"FunctionName": function_name},
                    period=PERIOD,
                    statistic="Sum",
                ),
                f"Lambda function {name} raised errors",
            )

    def _alarm(self, id: str, metric: cloudwatch.IMetric, description: str) -> None:
        alarm = cloudwatch.Alarm(
            self,
            id,
            metric=metric,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"Kiln: {description}",
        )
        if self.topic is not None:
            alarm.add_alarm_action(actions.SnsAction(self.topic))
            alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
