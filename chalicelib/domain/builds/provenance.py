"""Signed SLSA provenance for every build output (docs/provenance.md). When a job ends in
success with artifacts, whatever face made it, the API side (never a build host: hosts hold no
key) writes an in-toto Statement v1 with a SLSA Provenance v1 predicate about them, signed with
the KMS key in a DSSE envelope, beside the artifacts as ``<artifact_prefix>provenance.dsse.json``
(type ``MediaType.PROVENANCE``). The envelope joins the job's artifacts, and the manifest.json
an IMS-style build publishes lists it too.

``attest`` is idempotent (a result may be replayed): an envelope already stored for the same
statement and key is used again; the manifest lists the envelope once. It never fails the job:
when the statement cannot be made, signed or stored (KMS down, a missing object), it logs an
ERROR, counts ``ProvenanceFailed`` and the job succeeds without provenance.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import json
import re
from typing import Any

from chalicelib import observability, safe_json
from chalicelib.adapters.artifacts import ArtifactStore, s3_url
from chalicelib.adapters.models import JobModel
from chalicelib.adapters.signing import Signer
from chalicelib.domain.builds import dispatch
from chalicelib.domain.builds.kinds import Ports
from chalicelib.errors import DomainError
from chalicelib.host_protocol import (
    PROTOCOL_VERSION,
    Artifact,
    BuildOutput,
    JobMessage,
    MediaType,
)

FILE_NAME = "provenance.dsse.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://kiln.dev/build-types/{kind}/v1"
BUILDER_ID = "https://kiln.dev/builders/{arch}"
PACKAGE_SET_URI = "kiln:package-set"
REDACTED = "<redacted>"
#: request fields whose values never go into a statement (e.g. a composer user's password)
_SECRET_NAME = re.compile(r"password|secret|token|credential|private", re.IGNORECASE)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def attest(job: JobModel, output: BuildOutput, ports: Ports) -> BuildOutput:
    """``output`` with the signed provenance among its artifacts (and in its manifest), or
    ``output`` unchanged when it has nothing to attest or the provenance could not be made."""
    if not subject_artifacts(output):
        return output
    try:
        attested = _attest(job, output, ports)
    except Exception:  # provenance is never worth a lost job: logged, counted, alarmed on
        observability.logger().exception(
            "provenance could not be made, signed or stored: the job succeeds without it",
            extra={"job_kind": job.job_kind, "key_id": ports.settings.provenance_key_id},
        )
        observability.count("ProvenanceFailed")
        return output
    observability.count("ProvenanceSigned")
    return attested


def _attest(job: JobModel, output: BuildOutput, ports: Ports) -> BuildOutput:
    store = ports.artifacts
    message = dispatch.job_message(job, ports)
    plan = _build_plan(output, store)
    payload = payload_bytes(statement(job, output, message, plan))
    key = f"{message.artifact_prefix}{FILE_NAME}"
    data = _envelope(store, key, payload, ports.signer)
    head = store.head(key) or {}
    envelope = Artifact(key, MediaType.PROVENANCE, len(data), hashlib.sha256(data).hexdigest())
    manifest = _listed(store, output.manifest, message.artifact_prefix, envelope, data, head)
    artifacts = [a for a in output.artifacts if a.type != MediaType.PROVENANCE] + [envelope]
    return dataclasses.replace(output, artifacts=artifacts, manifest=manifest)


class KeyUnavailable(DomainError):
    status, title = 503, "Service Unavailable"


def published_keys(signer: Signer) -> dict[str, Any]:
    """``{"keys": [{"keyid", "keytype", "scheme", "public_key_pem"}]}``: what verifies Kiln's
    envelopes (GET /kiln/v1/provenance/keys)."""
    try:
        public = signer.public_key()
    except Exception as exc:
        observability.logger().exception("the provenance key's public half cannot be read")
        raise KeyUnavailable("the provenance signing key cannot be read now; try again") from exc
    return {"keys": [public.to_dict()]}


# -- the statement -----------------------------------------------------------------------------


def subject_artifacts(output: BuildOutput) -> list[Artifact]:
    """What the host built: every artifact it reported with a sha256, but the build log (and
    a provenance envelope, which attests them)."""
    return [
        artifact
        for artifact in output.artifacts
        if artifact.sha256
        and artifact.type not in (MediaType.BUILD_LOG, MediaType.PROVENANCE)
        and artifact.key != output.log_key
    ]


def statement(
    job: JobModel, output: BuildOutput, message: JobMessage, plan: dict[str, Any] | None
) -> dict[str, Any]:
    """The in-toto Statement v1 with its SLSA Provenance v1 predicate (docs/provenance.md)."""
    subjects = [
        {"name": _base_name(a.key), "digest": {"sha256": a.sha256}}
        for a in subject_artifacts(output)
    ]
    build_definition = {
        "buildType": BUILD_TYPE.format(kind=job.job_kind),
        "externalParameters": redacted(job.request or {}),
        "internalParameters": {
            "job_id": job.id,
            "job_kind": job.job_kind,
            "job_type": job.job_type,
            "recipe_type": job.recipe_type or "",
            "arch": job.arch,
            "tenant": job.tenant,
        },
        "resolvedDependencies": dependencies(output, message, plan),
    }
    tools = (plan or {}).get("tools")
    version = {str(k): str(v) for k, v in tools.items()} if isinstance(tools, dict) else {}
    version.setdefault("kiln-agent", "unreported")
    version["kiln-protocol"] = str(PROTOCOL_VERSION)
    metadata = {"invocationId": job.id}
    started = output.started_at if output.started_at is not None else job.host_started
    if started is not None:
        metadata["startedOn"] = rfc3339(float(started))
    if output.answered_at is not None:
        metadata["finishedOn"] = rfc3339(float(output.answered_at))
    run_details = {
        "builder": {"id": BUILDER_ID.format(arch=job.arch), "version": version},
        "metadata": metadata,
        "byproducts": byproducts(job, output, message.bucket),
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {"buildDefinition": build_definition, "runDetails": run_details},
    }


def dependencies(
    output: BuildOutput, message: JobMessage, plan: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """What the build read: the recipe archive, a customize job's source image, a Cachito
    request's commit, and, from the build plan, the mirror's and each repository's Release
    file, the package set and the plan itself."""
    bucket = message.bucket
    found: list[dict[str, Any]] = []
    recipe = message.recipe or {}
    if recipe.get("key"):
        entry = {"name": "recipe", "uri": s3_url(recipe.get("bucket") or bucket, recipe["key"])}
        found.append(_with_digest(entry, recipe.get("sha256")))
    for item in (message.source_image or {}).get("artifacts") or []:
        if isinstance(item, dict) and item.get("key"):
            entry = {
                "name": f"source-image/{_base_name(item['key'])}",
                "uri": s3_url(bucket, item["key"]),
            }
            found.append(_with_digest(entry, item.get("sha256")))
    source = message.source_request or {}
    if source.get("repo"):
        ref = str(source.get("ref") or "")
        entry = {"name": "source", "uri": f"git+{source['repo']}@{ref}"}
        found.append({**entry, "digest": {"gitCommit": ref}} if _COMMIT.match(ref) else entry)
    if plan is not None:
        found += _plan_dependencies(plan)
        artifact = _plan_artifact(output)
        if artifact is not None:
            entry = {"name": _base_name(artifact.key), "uri": s3_url(bucket, artifact.key)}
            found.append({**_with_digest(entry, artifact.sha256), "mediaType": artifact.type})
    return found


def _plan_dependencies(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    suite = str(plan.get("suite") or "")
    mirror = plan.get("mirror")
    if isinstance(mirror, str) and mirror and suite:
        entry = {"name": "mirror", "uri": release_uri(mirror, suite)}
        found.append(_with_digest(entry, plan.get("release_sha256")))
    for repository in plan.get("repositories") or []:
        if isinstance(repository, dict) and repository.get("url") and repository.get("suite"):
            uri = release_uri(str(repository["url"]), str(repository["suite"]))
            found.append(
                _with_digest({"name": "repository", "uri": uri}, repository.get("release_sha256"))
            )
    packages = plan.get("packages")
    if isinstance(packages, list):
        found.append(
            {
                "name": "package-set",
                "uri": PACKAGE_SET_URI,
                "digest": {"sha256": package_set_sha256(packages)},
                "annotations": {"packages": len(packages)},
            }
        )
    return found


def byproducts(job: JobModel, output: BuildOutput, bucket: str) -> list[dict[str, Any]]:
    """The build log (its digest when the host reported it) and the build host."""
    found: list[dict[str, Any]] = []
    log_key = output.log_key or job.build_log_key
    if log_key:
        listed = next(
            (a for a in output.artifacts if a.key == log_key or a.type == MediaType.BUILD_LOG),
            None,
        )
        entry = {"name": _base_name(log_key), "uri": s3_url(bucket, log_key)}
        found.append(
            {
                **_with_digest(entry, listed.sha256 if listed else None),
                "mediaType": MediaType.BUILD_LOG,
            }
        )
    node = output.node or job.build_node
    if node:
        found.append({"name": "build-node", "uri": f"kiln:build-node:{node}"})
    return found


def release_uri(base: str, suite: str) -> str:
    """Where a Debian archive's Release file is (as the build hosts fetch it)."""
    return f"{base.rstrip('/')}/dists/{suite}/Release"


def package_set_sha256(packages: list[Any]) -> str:
    """The sha256 of the package list's canonical JSON: keys sorted, no whitespace, UTF-8."""
    text = json.dumps(packages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def redacted(value: Any) -> Any:
    """``value`` with the value of every field named like a secret replaced."""
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_NAME.search(str(k)) else redacted(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


def rfc3339(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload_bytes(document: dict[str, Any]) -> bytes:
    """The statement as the envelope carries it (keys sorted, so equal statements are equal
    bytes)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding: what the signature is over."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _with_digest(entry: dict[str, Any], sha256: Any) -> dict[str, Any]:
    return {**entry, "digest": {"sha256": sha256}} if isinstance(sha256, str) and sha256 else entry


def _base_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _plan_artifact(output: BuildOutput) -> Artifact | None:
    return next((a for a in output.artifacts if a.type == MediaType.BUILD_PLAN_JSON), None)


def _build_plan(output: BuildOutput, store: ArtifactStore) -> dict[str, Any] | None:
    """The job's build plan, when it made one; it must be the bytes the host reported."""
    artifact = _plan_artifact(output)
    if artifact is None:
        return None
    data = store.read(artifact.key)
    if artifact.sha256 and hashlib.sha256(data).hexdigest() != artifact.sha256:
        raise ValueError(f"{artifact.key} is not the build plan the host reported (sha256)")
    plan = safe_json.loads(data)
    if not isinstance(plan, dict):
        raise ValueError(f"{artifact.key} is not a JSON object")
    return plan


# -- the envelope and the manifest -------------------------------------------------------------


def _envelope(store: ArtifactStore, key: str, payload: bytes, signer: Signer) -> bytes:
    """The stored envelope for this payload if there is one signed by the current key; else
    one signed now, and stored."""
    keyid = signer.public_key().keyid
    encoded = base64.b64encode(payload).decode("ascii")
    if store.exists(key):
        existing = store.read(key)
        try:
            found = safe_json.loads(existing)
        except safe_json.MalformedJSON:
            found = None
        if (
            isinstance(found, dict)
            and found.get("payloadType") == PAYLOAD_TYPE
            and found.get("payload") == encoded
            and any(
                isinstance(s, dict) and s.get("keyid") == keyid
                for s in found.get("signatures") or []
            )
        ):
            return existing
    keyid, signature = signer.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": encoded,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }
    data = (json.dumps(envelope, indent=2) + "\n").encode()
    store.put_bytes(key, data, MediaType.PROVENANCE)
    return data


def _listed(
    store: ArtifactStore,
    facts: dict[str, Any],
    prefix: str,
    envelope: Artifact,
    data: bytes,
    head: dict[str, Any],
) -> dict[str, Any]:
    """The build's manifest.json (``facts``: {key, etag, sha256}) listing the envelope once, as
    an artifact like the others; the facts of the manifest as it now is. A build without one,
    or whose manifest is not under the job's prefix, keeps what it had."""
    key = facts.get("key")
    if not key or key != f"{prefix}manifest.json" or not store.exists(key):
        return facts
    document = safe_json.loads(store.read(key))
    if not isinstance(document, dict) or not isinstance(document.get("artifacts", []), list):
        return facts
    entry = {
        "name": FILE_NAME,
        "type": MediaType.PROVENANCE,
        "link": {
            "path": store.url(envelope.key),
            "etag": str(head.get("ETag", "")).strip('"'),
            "type": "s3",
        },
        "size": envelope.size,
        "sha256": envelope.sha256,
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
    }
    listed = document.get("artifacts") or []
    if entry not in listed:
        kept = [
            e for e in listed if not (isinstance(e, dict) and e.get("type") == MediaType.PROVENANCE)
        ]
        document["artifacts"] = [*kept, entry]
        store.put_bytes(key, json.dumps(document, indent=2).encode(), MediaType.MANIFEST_JSON)
    current = store.read(key)
    etag = str((store.head(key) or {}).get("ETag", "")).strip('"')
    return {**facts, "etag": etag, "sha256": hashlib.sha256(current).hexdigest()}
