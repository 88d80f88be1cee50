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
