"""Signed SLSA provenance for build outputs (docs/provenance.md), driven as the build hosts and
the state machine drive a job: the host's objects in S3, then the result on the build-events
queue; checked as a user checks it, with securesystemslib and examples/verify_provenance.py."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from chalicelib.adapters import records
from chalicelib.adapters.models import JobModel
from chalicelib.host_protocol import MediaType
from tests.conftest import ROOT, Kiln
from tests.ims.helpers import V3, public_key, ready_recipe

SCRIPT = ROOT / "examples" / "verify_provenance.py"
KEYS = "/kiln/v1/provenance/keys"
MIRROR = "http://deb.example/debian"
ROOTFS = b"hsqs" + bytes(range(256)) * 64
PACKAGES = [
    {"name": "base-files", "version": "12.4", "arch": "amd64", "sha256": "1" * 64},
    {"name": "bash", "version": "5.2.15-2", "arch": "amd64", "sha256": "2" * 64},
]
PLAN = {
    "format": "kiln-build-plan/1",
    "mirror": MIRROR,
    "suite": "bookworm",
    "release_sha256": "a" * 64,
    "repositories": [
        {"url": "http://extra.example/apt", "suite": "stable", "release_sha256": "b" * 64}
    ],
    "packages": PACKAGES,
    "tools": {"mmdebstrap": "1.3.5", "kiln-agent": "python 3.11.2"},
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def read(kiln: Kiln, key: str) -> bytes:
    return bytes(s3().get_object(Bucket=kiln.provisioned.bucket, Key=key)["Body"].read())


def message_of(kiln: Kiln, job_id: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = kiln.provisioned.state_machine_arn.replace(":stateMachine:", ":execution:")
    return dict(json.loads(sfn.describe_execution(executionArn=f"{arn}:{job_id}")["input"]))


def published(kiln: Kiln, files: dict[str, tuple[str, bytes]], message: dict[str, Any]) -> Any:
    """What a host's publish_image leaves: each file under the prefix, and manifest.json."""
    bucket, prefix = kiln.provisioned.bucket, message["artifact_prefix"]
    listed, artifacts = [], []
    for name, (media_type, data) in files.items():
        put = s3().put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=data)
        link = {"path": f"s3://{bucket}/{prefix}{name}", "etag": put["ETag"].strip('"')}
        listed.append({"name": name, "type": media_type, "link": {**link, "type": "s3"},
                       "size": len(data), "sha256": sha256(data)})  # fmt: skip
        artifacts.append(
            {
                "key": f"{prefix}{name}",
                "type": media_type,
                "size": len(data),
                "sha256": sha256(data),
            }
        )
    manifest = json.dumps({"version": "1.0", "job_id": message["job_id"], "artifacts": listed})
    put = s3().put_object(Bucket=bucket, Key=f"{prefix}manifest.json", Body=manifest.encode())
    s3().put_object(Bucket=bucket, Key=message["log_key"], Body=b"I: built\n")
    facts = {"key": f"{prefix}manifest.json", "etag": put["ETag"].strip('"'),
             "sha256": sha256(manifest.encode())}  # fmt: skip
    return artifacts, facts


def result(message: dict[str, Any], artifacts: list[Any], manifest: dict[str, Any]) -> Any:
    return {
        "type": "result",
        "outcome": "success",
        "job_id": message["job_id"],
        "output": {
            "image_id": message["image_id"],
            "artifacts": artifacts,
            "manifest": manifest,
            "log_key": message["log_key"],
            "node": "test-host",
            "build_seconds": 12.5,
            "started_at": 1_700_000_000.25,
            "answered_at": 1_700_000_600.5,
        },
    }


@pytest.fixture
def ims_job(kiln: Kiln) -> dict[str, Any]:
    """An IMS create job its host built: the result as the state machine reports it."""
    kiln.register_host()
    recipe, key = ready_recipe(kiln), public_key(kiln)
    body = {"job_type": "create", "artifact_id": recipe["id"], "public_key_id": key["id"],
            "image_root_archive_name": "my-image"}  # fmt: skip
    job = kiln.call("POST", f"{V3}/jobs", body).json_body
    message = message_of(kiln, job["id"])
    files = {
        "my-image.squashfs": (MediaType.ROOTFS_SQUASHFS, ROOTFS),
        "vmlinuz": (MediaType.KERNEL, b"kernel"),
        "packages.json": (MediaType.PACKAGES_JSON, json.dumps(PACKAGES).encode()),
        "build-plan.json": (MediaType.BUILD_PLAN_JSON, json.dumps(PLAN, indent=2).encode()),
    }
    artifacts, manifest = published(kiln, files, message)
    return {"job": job, "body": body, "recipe": recipe, "message": message,
            "result": result(message, artifacts, manifest)}  # fmt: skip


def envelope_key(built: dict[str, Any]) -> str:
    return f"{built['message']['artifact_prefix']}provenance.dsse.json"


def statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def test_a_success_yields_a_signed_provenance_every_face_sees(kiln: Kiln, ims_job: Any) -> None:
    kiln.build_events(ims_job["result"])
    job_id, message = ims_job["job"]["id"], ims_job["message"]
    done = kiln.call("GET", f"{V3}/jobs/{job_id}").json_body
    assert done["status"] == "success"
    record = records.find(JobModel, job_id)
    assert record is not None
    (provenance,) = [a for a in record.artifacts if a["type"] == MediaType.PROVENANCE]
    key = envelope_key(ims_job)
    data = read(kiln, key)
    assert provenance == {"key": key, "type": MediaType.PROVENANCE, "size": len(data),
                          "sha256": sha256(data)}  # fmt: skip
    envelope = json.loads(data)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = statement_of(envelope)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == {
        "my-image.squashfs": sha256(ROOTFS),
        "vmlinuz": sha256(b"kernel"),
        "packages.json": sha256(json.dumps(PACKAGES).encode()),
        "build-plan.json": sha256(json.dumps(PLAN, indent=2).encode()),
    }  # not the build log
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "https://kiln.dev/build-types/ims-create/v1"
    assert definition["externalParameters"] == ims_job["body"]
    assert definition["internalParameters"] == {
        "job_id": job_id, "job_kind": "ims-create", "job_type": "create",
        "recipe_type": "kiln-noop", "arch": "x86_64", "tenant": "demo",
    }  # fmt: skip
    dependencies = {d["name"]: d for d in definition["resolvedDependencies"]}
    recipe = message["recipe"]
    assert dependencies["recipe"] == {
        "name": "recipe",
        "uri": f"s3://{recipe['bucket']}/{recipe['key']}",
        "digest": {"sha256": ims_job["recipe"]["archive"]["sha256"]},
    }
    assert dependencies["mirror"]["uri"] == f"{MIRROR}/dists/bookworm/Release"
    assert dependencies["mirror"]["digest"] == {"sha256": "a" * 64}
    assert dependencies["repository"] == {
        "name": "repository",
        "uri": "http://extra.example/apt/dists/stable/Release",
        "digest": {"sha256": "b" * 64},
    }
    canonical = json.dumps(PACKAGES, sort_keys=True, separators=(",", ":")).encode()
    assert dependencies["package-set"]["uri"] == "kiln:package-set"
    assert dependencies["package-set"]["digest"] == {"sha256": sha256(canonical)}
    assert dependencies["build-plan.json"]["mediaType"] == MediaType.BUILD_PLAN_JSON
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] == "https://kiln.dev/builders/x86_64"
    assert run["builder"]["version"]["kiln-agent"] == "python 3.11.2"
    assert run["metadata"] == {
        "invocationId": job_id,
        "startedOn": "2023-11-14T22:13:20.250Z",
        "finishedOn": "2023-11-14T22:23:20.500Z",
    }
    log_uri = f"s3://{kiln.provisioned.bucket}/{message['log_key']}"
    assert [b.get("uri") for b in run["byproducts"]] == [log_uri, "kiln:build-node:test-host"]
    # IMS clients find it in the image's manifest, which the image record points at as it is now
    image_id = done["resultant_image_id"]
    manifest = kiln.call("GET", f"{V3}/images/{image_id}/manifest").json_body
    (entry,) = [a for a in manifest["artifacts"] if a["type"] == MediaType.PROVENANCE]
    assert entry["name"] == "provenance.dsse.json" and entry["sha256"] == sha256(data)
    assert requests.get(entry["download_url"], timeout=10).content == data
    image = kiln.call("GET", f"{V3}/images/{image_id}").json_body
    head = s3().head_object(
        Bucket=kiln.provisioned.bucket, Key=f"{message['artifact_prefix']}manifest.json"
    )
    assert image["link"]["etag"] == head["ETag"].strip('"')


def public_keys(kiln: Kiln) -> dict[str, Any]:
    """The keys route, as anyone calls it: no token."""
    answer = kiln.client.http.get(KEYS)
    assert answer.status_code == 200, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    return dict(answer.json_body)


def test_the_envelope_verifies_with_securesystemslib_as_the_readme_says(
    kiln: Kiln, ims_job: Any
) -> None:
    kiln.build_events(ims_job["result"])
    (listed,) = public_keys(kiln)["keys"]
    assert listed["scheme"] == "ecdsa-sha2-nistp256" and listed["keytype"] == "ecdsa"
    key = SSlibKey.from_crypto(load_pem_public_key(listed["public_key_pem"].encode()))
    assert key.keyid == listed["keyid"]  # securesystemslib's own keyid of the published key
    envelope = Envelope.from_dict(json.loads(read(kiln, envelope_key(ims_job))))
    assert set(envelope.verify([key], 1)) == {key.keyid}
    subjects = json.loads(envelope.payload)["subject"]
    assert {"sha256": sha256(ROOTFS)} in [s["digest"] for s in subjects]


@pytest.fixture
def verifier(kiln: Kiln, ims_job: Any, tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """The envelope and the rootfs downloaded, and the keys route served over HTTP (as `make
    up` serves it) for the example script, which runs in a process of its own."""
    kiln.build_events(ims_job["result"])
    envelope, rootfs = tmp_path / "provenance.dsse.json", tmp_path / "rootfs.squashfs"
    envelope.write_bytes(read(kiln, envelope_key(ims_job)))
    rootfs.write_bytes(ROOTFS)
    body = json.dumps(public_keys(kiln)).encode()

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            found = self.path == KEYS
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if found else b"{}")

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield envelope, rootfs, f"http://127.0.0.1:{server.server_address[1]}{KEYS}"
    finally:
        server.shutdown()
        server.server_close()


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def test_the_example_script_says_ok(verifier: tuple[Path, Path, str]) -> None:
    envelope, rootfs, url = verifier
    done = run_script(str(envelope), str(rootfs), "--key-url", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK: {rootfs} is my-image.squashfs"), done.stdout


def test_a_tampered_artifact_fails(verifier: tuple[Path, Path, str]) -> None:
    envelope, rootfs, url = verifier
    changed = bytearray(ROOTFS)
    changed[100] ^= 1  # one byte
    rootfs.write_bytes(bytes(changed))
    done = run_script(str(envelope), str(rootfs), "--key-url", url)
    assert done.returncode == 1 and "is not a subject" in done.stderr, done


def test_a_tampered_envelope_payload_fails(
    verifier: tuple[Path, Path, str], tmp_path: Path
) -> None:
    envelope_path, rootfs, url = verifier
    document = json.loads(envelope_path.read_text())
    statement = statement_of(document)
    statement["subject"].append({"name": "evil", "digest": {"sha256": "0" * 64}})
    document["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    envelope_path.write_text(json.dumps(document))
    done = run_script(str(envelope_path), str(rootfs), "--key-url", url)
    assert done.returncode == 1 and "does not verify" in done.stderr, done
    keys = tmp_path / "keys.json"
    keys.write_text(requests.get(url, timeout=10).text)
    with pytest.raises(VerificationError):
        key = json.loads(keys.read_text())["keys"][0]["public_key_pem"]
        Envelope.from_dict(document).verify(
            [SSlibKey.from_crypto(load_pem_public_key(key.encode()))], 1
        )
    assert run_script(str(envelope_path), str(rootfs), "--key-file", str(keys)).returncode == 1


def test_a_replayed_result_changes_nothing(kiln: Kiln, ims_job: Any) -> None:
    from chalicelib.container import container
    from chalicelib.domain.builds import provenance
    from chalicelib.host_protocol import BuildOutput

    kiln.build_events(ims_job["result"])
    key = envelope_key(ims_job)
    first = read(kiln, key)
    kiln.build_events(ims_job["result"])  # the state machine's message again
    assert read(kiln, key) == first
    record = records.find(JobModel, ims_job["job"]["id"])
    assert record is not None and record.status == "success"
    assert [a["type"] for a in record.artifacts].count(MediaType.PROVENANCE) == 1
    # attested again (a replay after a later step failed): the same envelope, listed once,
    # without asking KMS again
    ports = container()
    signs = []
    original = ports.signer.sign
    ports.signer.sign = lambda message: signs.append(message) or original(message)  # type: ignore[method-assign]
    output = BuildOutput.from_dict(ims_job["result"]["output"])
    again = provenance.attest(record, output, ports)
    assert signs == [] and read(kiln, key) == first
    assert [a.type for a in again.artifacts].count(MediaType.PROVENANCE) == 1
    manifest = json.loads(read(kiln, again.manifest["key"]))
    assert [a["type"] for a in manifest["artifacts"]].count(MediaType.PROVENANCE) == 1
    assert again.manifest["sha256"] == sha256(read(kiln, again.manifest["key"]))


def test_when_kms_cannot_sign_the_job_still_succeeds_without_provenance(
    kiln: Kiln, ims_job: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """KMS down (here: no such key) never loses the build: the job succeeds without
    provenance, with an ERROR and a ProvenanceFailed metric (docs/provenance.md)."""
    kiln.configure(provenance_key_id="alias/kiln-no-such-key")
    kiln.build_events(ims_job["result"])  # acknowledged: not retried, not dead-lettered
    record = records.find(JobModel, ims_job["job"]["id"])
    assert record is not None and record.status == "success"
    assert MediaType.PROVENANCE not in [a["type"] for a in record.artifacts]
    assert "Contents" not in s3().list_objects_v2(
        Bucket=kiln.provisioned.bucket, Prefix=envelope_key(ims_job)
    )
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("provenance could not be made" in r.getMessage() for r in errors), errors
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert any("ProvenanceFailed" in line for line in lines if "_aws" in line)
    answer = kiln.client.http.get(KEYS)  # the keys route says it is unavailable, in JSON
    assert answer.status_code == 503 and answer.json_body["status"] == 503


def test_a_compose_image_gets_provenance_too(kiln: Kiln) -> None:
    """The core never asks which face made a job: a composer image is attested alike, its
    request as the user sent it."""
    from tests.composer.helpers import compose_body, job_ids, post

    kiln.register_host("x86_64", xname="x86-host")
    body = compose_body()
    compose_id = post(kiln, body).json_body["id"]
    (job_id,) = job_ids(kiln, compose_id)
    message = message_of(kiln, job_id)
    files = {"disk.qcow2": (MediaType.DISK_QCOW2, b"QFI\xfb" + ROOTFS)}
    artifacts, manifest = published(kiln, files, message)
    kiln.build_events(result(message, artifacts, manifest))
    record = records.find(JobModel, job_id)
    assert record is not None and record.status == "success"
    (entry,) = [a for a in record.artifacts if a["type"] == MediaType.PROVENANCE]
    statement = statement_of(json.loads(read(kiln, entry["key"])))
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "https://kiln.dev/build-types/compose-image/v1"
    assert definition["externalParameters"]["compose_request"] == body
    assert [s["name"] for s in statement["subject"]] == ["disk.qcow2"]
    assert "recipe" in {d["name"] for d in definition["resolvedDependencies"]}


def test_secrets_in_a_request_stay_out_of_the_statement() -> None:
    from chalicelib.domain.builds.provenance import REDACTED, redacted

    request = {"customizations": {"users": [{"name": "a", "password": "hunter2"}]}, "k": 1}
    assert redacted(request) == {
        "customizations": {"users": [{"name": "a", "password": REDACTED}]},
        "k": 1,
    }


def test_the_keys_route_is_served_whatever_kiln_faces_says() -> None:
    probe = "import app; print([r for r in app.app.routes if r.startswith('/kiln/v1/prov')])"
    env = {**__import__("os").environ, "KILN_FACES": "glance"}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == str([KEYS])


def test_the_local_kms_signs_a_digest_as_aws_does(kiln: Kiln) -> None:
    """moto alone hashes a DIGEST again (infra/local/moto_kms.py): the fix is in place."""
    from infra.local import moto_kms
    from infra.resources import PROVENANCE_KEY_ALIAS

    kms = boto3.client("kms", region_name="us-east-1")
    assert moto_kms.honours_digest(kms, PROVENANCE_KEY_ALIAS)
    assert kiln.provisioned.signing_keys[PROVENANCE_KEY_ALIAS].startswith("arn:aws:kms:")


def test_provisioning_makes_the_signing_key_once(aws: Any) -> None:
    """`make up` provisions again into a moto that has the key: the same key, one alias."""
    from infra import resources
    from infra.local.provision import provision

    again = provision("us-east-1", "kiln", aws.bucket, resources.Timing())
    assert again.signing_keys == aws.signing_keys
    kms = boto3.client("kms", region_name="us-east-1")
    aliases = [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert aliases.count(resources.PROVENANCE_KEY_ALIAS) == 1
    described = kms.describe_key(KeyId=resources.PROVENANCE_KEY_ALIAS)["KeyMetadata"]
    assert (described["KeySpec"], described["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")


def test_the_settings_default_is_the_provisioned_alias() -> None:
    from chalicelib.config import Settings
    from infra.resources import PROVENANCE_KEY_ALIAS

    assert Settings.provenance_key_id == PROVENANCE_KEY_ALIAS


def test_a_cachito_bundle_gets_provenance_with_its_commit(kiln: Kiln) -> None:
    from tests.cachito import helpers as cachito

    kiln.register_host(xname="cachito-host", job_types=("cachito",))
    request_id = cachito.create(kiln)["id"]
    bundle = cachito.complete(kiln, request_id)
    job_id = cachito.record(request_id).job_id
    record = records.find(JobModel, job_id)
    assert record is not None and record.status == "success"
    assert cachito.record(request_id).state == "complete"
    (entry,) = [a for a in record.artifacts if a["type"] == MediaType.PROVENANCE]
    assert entry["key"] == f"cachito/requests/{request_id}/provenance.dsse.json"
    statement = statement_of(json.loads(read(kiln, entry["key"])))
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects["bundle.tar.gz"] == sha256(bundle) and set(subjects) == {
        "bundle.tar.gz",
        "packages.json",
    }
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "https://kiln.dev/build-types/cachito-request/v1"
    assert definition["externalParameters"]["ref"] == cachito.REF
    (source,) = [d for d in definition["resolvedDependencies"] if d["name"] == "source"]
    assert source == {
        "name": "source",
        "uri": f"git+{cachito.REPO}@{cachito.REF}",
        "digest": {"gitCommit": cachito.REF},
    }


def test_a_customize_job_depends_on_its_source_image_artifacts() -> None:
    from chalicelib.domain.builds.provenance import dependencies
    from chalicelib.host_protocol import BuildOutput, JobMessage

    message = JobMessage(
        job_id="j", kind="ims-customize", job_type="customize", tenant="demo", arch="x86_64",
        recipe_type="", bucket="b", image_id="i", artifact_prefix="images/i/", log_key="l",
        log_chunk_prefix="c/", cancel_key="x", source_date_epoch=0,
        source_image={"image_id": "s", "manifest_key": "images/s/manifest.json", "artifacts": [
            {"type": MediaType.ROOTFS_SQUASHFS, "key": "images/s/r.squashfs", "sha256": "c" * 64}
        ]},
    )  # fmt: skip
    assert dependencies(BuildOutput(), message, None) == [
        {
            "name": "source-image/r.squashfs",
            "uri": "s3://b/images/s/r.squashfs",
            "digest": {"sha256": "c" * 64},
        }
    ]
