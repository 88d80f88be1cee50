"""The Amazon States Language validator (npm's ``asl-validator``, pinned in package.json) run on
a state machine definition: the schema Step Functions checks on CreateStateMachine (a number
where a number belongs, known state fields, reachable states, valid paths), which moto's
Step Functions does not check at all.

``ensure_node_tools()`` runs ``npm ci`` at the repository root when node_modules lacks the
validator, so a fresh checkout needs only Node and npm on PATH.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
#: placeholders for what a deployed definition names (Fn::Sub / Fn::Join resolved to these)
FAKE_ACCOUNT = "123456789012"
FAKE_REGION = "us-east-1"


class NodeToolsMissing(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Verdict:
    valid: bool
    #: the validator's own words (its errors, one per line)
    report: str


def ensure_node_tools() -> Path:
    """The validator's path, after ``npm ci`` when it is not installed yet (under a lock: two
    test workers do not install at once)."""
    if VALIDATOR.exists():
        return VALIDATOR
    npm = shutil.which("npm")
    if npm is None:
        raise NodeToolsMissing(
            "npm is not on PATH: the deploy checks need Node 20 and `npm ci` at the repository "
            "root (package.json pins asl-validator)"
        )
    lock_path = ROOT / ".kiln" / "npm-ci.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not VALIDATOR.exists():
            done = subprocess.run(
                [npm, "ci", "--prefix", str(ROOT), "--no-audit", "--no-fund"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0 or not VALIDATOR.exists():
                raise NodeToolsMissing(f"`npm ci` failed:\n{done.stdout}\n{done.stderr}")
    return VALIDATOR


def validate(definition: str | dict[str, Any]) -> Verdict:
    """Whether the validator accepts the definition (JSON text or an already parsed one)."""
    validator = ensure_node_tools()
    text = definition if isinstance(definition, str) else json.dumps(definition)
    with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as handle:
        handle.write(text)
    path = Path(handle.name)
    try:
        done = subprocess.run(
            [str(validator), "--json-path", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        path.unlink(missing_ok=True)
    report = (done.stdout + done.stderr).replace(str(path), "<definition>").strip()
    return Verdict(done.returncode == 0, report)


def resolve_intrinsics(value: Any, references: dict[str, str] | None = None) -> Any:
    """A template's ``DefinitionString`` as the deployed text: ``Fn::Join``, ``Fn::Sub``,
    ``Ref`` and ``Fn::GetAtt`` replaced by fake but well-formed ARNs and URLs, so that only the
    definition's own shape is judged."""
    refs = {
        "AWS::AccountId": FAKE_ACCOUNT,
        "AWS::Region": FAKE_REGION,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "kiln",
        **(references or {}),
    }
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [resolve_intrinsics(item, refs) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        return {key: resolve_intrinsics(item, refs) for key, item in value.items()}
    ((name, argument),) = value.items()
    if name == "Fn::Join":
        separator, parts = argument
        return separator.join(str(resolve_intrinsics(part, refs)) for part in parts)
    if name == "Fn::Sub":
        text, extra = (argument, {}) if isinstance(argument, str) else argument
        local = {**refs, **{k: str(resolve_intrinsics(v, refs)) for k, v in extra.items()}}
        return _substitute(text, local)
    if name == "Ref":
        return refs.get(argument, _fake_reference(argument))
    if name == "Fn::GetAtt":
        logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
        return _fake_attribute(logical, attribute)
    if name == "Fn::ImportValue":
        return _fake_reference(str(resolve_intrinsics(argument, refs)))
    if name.startswith("Fn::"):
        raise ValueError(f"cannot resolve {name} in a state machine definition")
    return {name: resolve_intrinsics(argument, refs)}


def _substitute(text: str, refs: dict[str, str]) -> str:
    out, rest = [], text
    while "${" in rest:
        before, _, after = rest.partition("${")
        name, _, rest = after.partition("}")
        out.append(before)
        if name.startswith("!"):
            out.append("${" + name[1:] + "}")
        elif "." in name:
            out.append(_fake_attribute(*name.split(".", 1)))
        else:
            out.append(refs.get(name, _fake_reference(name)))
    out.append(rest)
    return "".join(out)


def _fake_reference(logical: str) -> str:
    return f"kiln-{logical.lower()}"


def _fake_attribute(logical: str, attribute: str) -> str:
    """A URL for a queue's QueueUrl, an ARN for anything else."""
    name = _fake_reference(logical)
    if attribute == "QueueUrl":
        return f"https://sqs.{FAKE_REGION}.amazonaws.com/{FAKE_ACCOUNT}/{name}"
    if attribute == "QueueName":
        return name
    return f"arn:aws:sqs:{FAKE_REGION}:{FAKE_ACCOUNT}:{name}"
