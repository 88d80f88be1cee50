"""Step Functions: start a build execution named by the job id."""

from __future__ import annotations

import json
from typing import Any


class Workflows:
    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def start_build(self, job_id: str, build_input: dict[str, Any]) -> str:
        """Start the build; the execution is named by the job id, so a repeat is a no-op."""
        try:
            response = self._sfn.start_execution(
                stateMachineArn=self._arn, name=job_id, input=json.dumps(build_input)
            )
        except self._sfn.exceptions.ExecutionAlreadyExists:
            return self.execution_arn(job_id)
        return str(response["executionArn"])

    def execution_arn(self, job_id: str) -> str:
        return self._arn.replace(":stateMachine:", ":execution:") + f":{job_id}"

    def execution_exists(self, job_id: str) -> bool:
        """Whether Step Functions knows the job's execution (running or ended): on the local
        stack, executions die with moto, while the job records are kept."""
        try:
            self._sfn.describe_execution(executionArn=self.execution_arn(job_id))
        except self._sfn.exceptions.ExecutionDoesNotExist:
            return False
        return True

    def any_running(self) -> bool:
        """Whether any build execution runs (then some task token in a build queue is live)."""
        found = self._sfn.list_executions(
            stateMachineArn=self._arn, statusFilter="RUNNING", maxResults=1
        )
        return bool(found["executions"])
