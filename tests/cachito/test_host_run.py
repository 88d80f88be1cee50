"""A Cachito request run on a build host (builders/cachito/run.py): the job message in, the
bundle and its package data in S3 (moto), progress with reasons on the events queue, and the
agent's answers."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger

from builders.agent import Agent
from builders.cachito.bundle import ArchiveRefused, build_bundle, extract_tar
from builders.cachito.errors import InvalidRequestData, ValidationError
from builders.cachito.run import CachitoRun, UnknownError
from builders.host_config import HostConfig
from builders.report import Reporter
from chalicelib.config import BUILD_EVENTS_QUEUE
from chalicelib.host_protocol import BuildOutput, Failure, FailureCode, JobMessage, MediaType
from infra.local.provision import Provisioned
from tests.cachito.git_server import GitServer

FILES = {"README.md": "hello\n", "src/app.py": "print('hi')\n"}
REASONS = [
    "Fetching the application source",
    "Assembling the bundle archive",
    "Uploading the bundle",
]
COMMIT_TIME = 1704067200  # the test git server's commit date


class Host:
    """A build host's pieces against in-process moto, running Cachito jobs by hand."""

    def __init__(self, aws: Provisioned, work_dir: Path) -> None:
        self.s3, self.sqs = boto3.client("s3"), boto3.client("sqs")
        self.sfn = boto3.client("stepfunctions")
        self.bucket = aws.bucket
        self.events = aws.queue_urls[BUILD_EVENTS_QUEUE]
        self.config = HostConfig(
            arch="x86_64",
            xname="cachito-host",
            build_queue_url="",
            events_queue_url=self.events,
            work_dir=work_dir,
            heartbeat_seconds=3600,  # no task heartbeat (the tokens here are no task's)
            region="us-east-1",
            bucket=aws.bucket,
        )
        self.reporter = Reporter(self.sqs, self.s3, self.sfn, self.events, "cachito-host")

    def job(self, repo: str, ref: str, request_id: int = 7, **request: Any) -> JobMessage:
        job_id = str(uuid.uuid4())
        return JobMessage(
            job_id=job_id,
            kind="cachito-request",
            job_type="cachito",
            tenant="demo",
            arch="x86_64",
            recipe_type="",
            bucket=self.bucket,
            image_id=f"cachito-{request_id}",
            artifact_prefix=f"cachito/requests/{request_id}/",
            log_key=f"jobs/{job_id}/build.log",
            log_chunk_prefix="",
            cancel_key=f"control/jobs/{job_id}/cancel",
            source_date_epoch=0,
            source_request={
                "request_id": request_id,
                "repo": repo,
                "ref": ref,
                "pkg_managers": [],
                "packages": {},
                "flags": [],
                "dependency_replacements": [],
                "options": {"allow_cidrs": "127.0.0.0/8"},
                "limits": {
                    "max_dependencies": 100,
                    "max_bytes": 10_000_000,
                    "max_source_bytes": 10_000_000,
                },
                "cache_prefix": "cachito-cache/",
                **request,
            },
        )

    def run(self, job: JobMessage) -> BuildOutput:
        return CachitoRun(job, self.reporter, self.s3, self.config, lambda: False).execute()

    def read(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def progress(self, job_id: str) -> list[dict[str, Any]]:
        found = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.events, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not got:
                return [m for m in found if m["type"] == "progress" and m["job_id"] == job_id]
            for message in got:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.events, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def host(aws: Provisioned, tmp_path: Path) -> Host:
    return Host(aws, tmp_path / "host")


@pytest.fixture
def git(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path) as server:
        yield server


def members(bundle: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return {member.name: member for member in tar.getmembers()}


def test_a_source_only_request_publishes_the_bundle_and_package_data(
    host: Host, git: GitServer
) -> None:
    url, commit = git.repo("app", FILES, symlinks={"link": "README.md"})
    job = host.job(url, commit)
    output = host.run(job)

    bundle_key, data_key = "cachito/requests/7/bundle.tar.gz", "cachito/requests/7/packages.json"
    bundle, data = host.read(bundle_key), host.read(data_key)
    assert [(a.key, a.type, a.size, a.sha256) for a in output.artifacts] == [
        (bundle_key, MediaType.SOURCE_BUNDLE, len(bundle), hashlib.sha256(bundle).hexdigest()),
        (data_key, MediaType.PACKAGE_DATA, len(data), hashlib.sha256(data).hexdigest()),
    ]
    head = host.s3.head_object(Bucket=host.bucket, Key=bundle_key)
    assert head["Metadata"]["sha256"] == hashlib.sha256(bundle).hexdigest()
    assert head["ContentType"] == "application/gzip"
    assert output.image_id == "cachito-7" and output.node == "cachito-host"
    assert json.loads(data) == {
        "packages": [],
        "environment_variables": {},
        "configuration_files": [],
    }

    found = members(bundle)
    assert list(found) == [
        "app",
        "app/README.md",
        "app/link",
        "app/src",
        "app/src/app.py",
        "deps",
    ]
    assert found["deps"].isdir() and found["app/link"].linkname == "README.md"
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in found.values()} == {(COMMIT_TIME, 0, 0, "")}
    assert bundle[4:8] == b"\0\0\0\0"  # no gzip timestamp

    progress = host.progress(job.job_id)
    assert [(p["status"], p["reason"]) for p in progress] == [
        ("building_image", reason) for reason in REASONS
    ]
    log = host.read(output.log_key).decode()
    assert "== building_image: Fetching the application source" in log
    assert f"uploaded {bundle_key}" in log


def test_a_git_submodule_request_records_the_submodules(host: Host, git: GitServer) -> None:
    lib_url, lib = git.repo("lib", {"lib.txt": "library\n"})
    url, commit = git.repo("app", FILES, submodules={"lib": (lib_url, lib)})
    output = host.run(host.job(url, commit, pkg_managers=["git-submodule"]))
    bundle = host.read(output.artifacts[0].key)
    found = members(bundle)
    assert "app/lib/lib.txt" in found and "app/.gitmodules" in found
    assert not any(name.endswith(".git") or "/.git/" in name for name in found)
    (package,) = json.loads(host.read(output.artifacts[1].key))["packages"]
    assert package["type"] == "git-submodule" and package["path"] == "lib"
    assert package["version"] == f"{lib_url}#{lib}" and package["dependencies"] == []


def test_the_same_request_again_reuses_the_earlier_outputs_whole(
    host: Host, git: GitServer
) -> None:
    url, commit = git.repo("app", FILES)
    first = host.run(host.job(url, commit, request_id=1, flags=["include-git-dir"]))
    shutil.rmtree(git.root / "app.git")  # nothing can be fetched now
    job = host.job(url, commit, request_id=2, flags=["include-git-dir"])
    again = host.run(job)
    assert [a.sha256 for a in again.artifacts] == [a.sha256 for a in first.artifacts]
    assert [a.key for a in again.artifacts] == [
        "cachito/requests/2/bundle.tar.gz",
        "cachito/requests/2/packages.json",
    ]
    assert host.read(again.artifacts[0].key) == host.read(first.artifacts[0].key)
    log = host.read(again.log_key).decode()
    assert "identical earlier request" in log and "no source or dependency fetched" in log
    assert [p["reason"] for p in host.progress(job.job_id)] == [
        "Reusing the bundle of an identical request from the cache"
    ]


def test_another_request_for_the_same_commit_comes_from_the_source_cache(
    host: Host, git: GitServer
) -> None:
    url, commit = git.repo("app", FILES)
    first = host.run(host.job(url, commit, request_id=1, flags=["include-git-dir"]))
    shutil.rmtree(git.root / "app.git")  # only the source cache has it now
    other = host.job(
        url,
        commit,
        request_id=2,
        flags=["include-git-dir"],
        options={"allow_cidrs": "127.0.0.0/8", "pip_index_url": "http://127.0.0.1:9"},
    )  # another fingerprint: its outputs are made anew, from the source cache
    again = host.run(other)
    assert first.artifacts[0].sha256 == again.artifacts[0].sha256
    assert "app/.git/HEAD" in members(host.read(again.artifacts[0].key))
    log = host.read(again.log_key).decode()
    assert "from the source cache" in log and "identical earlier request" not in log


def test_a_failing_request_uploads_nothing(host: Host, git: GitServer) -> None:
    url, _ = git.repo("app", FILES)
    job = host.job(url, "0" * 40)
    with pytest.raises(InvalidRequestData, match="Please verify the supplied reference"):
        host.run(job)
    assert host.keys("cachito/requests/") == []
    assert [p["reason"] for p in host.progress(job.job_id)] == [REASONS[0]]


def test_a_failure_after_the_upload_removes_what_was_uploaded(host: Host, git: GitServer) -> None:
    url, commit = git.repo("app", FILES)
    job = host.job(url, commit)
    broken = JobMessage(**{**job.to_dict(), "log_key": ""})  # the log cannot go up
    with pytest.raises(UnknownError, match="^UnknownError: An unknown error occurred$"):
        host.run(broken)
    assert host.keys("cachito/requests/") == []


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        (
            {"pkg_managers": ["pip"], "packages": {"pip": [{"path": "../elsewhere"}]}},
            'The "path" values in the "packages.pip" value must be to a relative path',
        ),
        (
            {"pkg_managers": ["rubygems"]},
            "The following package managers are not enabled: rubygems",
        ),
    ],
)
def test_a_request_kiln_cannot_run_fails_before_fetching(
    host: Host, git: GitServer, request_fields: dict[str, Any], message: str
) -> None:
    url, commit = git.repo("app", FILES)
    job = host.job(url, commit, **request_fields)
    with pytest.raises(ValidationError, match=message):
        host.run(job)
    assert host.progress(job.job_id) == [] and host.keys("cachito/") == []


# -- through the agent -------------------------------------------------------------------------
@pytest.fixture
def agent(host: Host) -> Agent:
    return Agent(host.config, host.sqs, host.s3, host.sfn, Logger(service="test-cachito-host"))


def answer(agent: Agent, job: JobMessage) -> BuildOutput | Failure | None:
    agent.handle(job, "no-task-token")  # SendTask* refuses the token; the answer is kept
    return agent.answers.get(job.job_id)


def test_the_agent_runs_cachito_jobs_and_says_so(agent: Agent, host: Host, git: GitServer) -> None:
    assert "cachito" in agent.job_types
    url, commit = git.repo("app", FILES)
    output = answer(agent, host.job(url, commit))
    assert isinstance(output, BuildOutput)
    assert [a.type for a in output.artifacts] == [MediaType.SOURCE_BUNDLE, MediaType.PACKAGE_DATA]


def test_a_client_error_is_answered_build_failed(agent: Agent, host: Host, git: GitServer) -> None:
    url, commit = git.repo("app", FILES, symlinks={"escape": "/etc/passwd"})
    failure = answer(agent, host.job(url, commit))
    assert failure == Failure(
        FailureCode.BUILD_FAILED,
        "ValidationError: The destination of 'escape' is outside of cloned repository",
    )


def test_a_server_error_is_answered_host_error(agent: Agent, host: Host, git: GitServer) -> None:
    _, commit = git.repo("app", FILES)
    failure = answer(agent, host.job(git.url("nowhere"), commit))
    assert isinstance(failure, Failure) and failure.code is FailureCode.HOST_ERROR
    assert failure.text.startswith("RepositoryAccessError: Failed cloning the Git repository: ")


def test_anything_unexpected_is_an_unknown_error(agent: Agent, host: Host, git: GitServer) -> None:
    url, commit = git.repo("app", FILES)
    job = host.job(url, commit, options={"allow_cidrs": "not-a-network"})
    failure = answer(agent, job)
    assert failure == Failure(FailureCode.HOST_ERROR, "UnknownError: An unknown error occurred")
    log = host.read(job.log_key).decode()
    assert "unexpected ValueError: bad allow-list entry 'not-a-network'" in log


# -- the bundle archive ------------------------------------------------------------------------
def test_the_bundle_bytes_depend_only_on_the_tree(tmp_path: Path) -> None:
    digests = []
    for run in ("one", "two"):
        root = tmp_path / run
        (root / "app/b").mkdir(parents=True)
        (root / "app/b/z.txt").write_text("z")
        (root / "app/a.sh").write_text("#!/bin/sh\n")
        (root / "app/a.sh").chmod(0o700 if run == "one" else 0o755)
        digests.append(build_bundle(root, tmp_path / f"{run}.tar.gz", COMMIT_TIME, 1000).sha256)
    assert digests[0] == digests[1]
    found = members((tmp_path / "one.tar.gz").read_bytes())
    assert list(found) == ["app", "app/a.sh", "app/b", "app/b/z.txt", "deps"]
    assert found["app/a.sh"].mode == 0o755 and found["app/b/z.txt"].mode == 0o644


def test_a_bundle_over_its_bound_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tree/app").mkdir(parents=True)
    (tmp_path / "tree/app/big").write_bytes(b"x" * 2000)
    with pytest.raises(ValidationError, match="more than 1000 bytes"):
        build_bundle(tmp_path / "tree", tmp_path / "b.tar.gz", COMMIT_TIME, 1000)


def test_an_archive_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 50_000_000
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ArchiveRefused, match="unpacks to more than 1000000 bytes"):
        extract_tar(bomb, tmp_path / "out", 1_000_000)
    assert list((tmp_path / "out").iterdir()) == []


def test_an_archive_member_escaping_the_target_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        link = tarfile.TarInfo("out")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
        tar.addfile(link)
        payload = tarfile.TarInfo("out/planted")
        payload.size = 1
        tar.addfile(payload, io.BytesIO(b"x"))
    with pytest.raises(ArchiveRefused):
        extract_tar(archive, tmp_path / "target", 1000)
    assert not (tmp_path / "planted").exists()


def test_a_long_step_is_reported_again_so_the_request_keeps_moving(
    host: Host, tmp_path: Path
) -> None:
    """atomic-reactor gives up an hour after a request's ``updated`` last changed: a step that
    runs long is reported again, each time with a new reason."""
    host.config = dataclasses.replace(host.config, cachito_progress_seconds=0.3)
    with GitServer(tmp_path / "slow", delay=0.5) as slow:  # a slow git host: a slow fetch
        url, commit = slow.repo("app", FILES)
        job = host.job(url, commit)
        host.run(job)
    reasons = [p["reason"] for p in host.progress(job.job_id)]
    assert reasons[0] == "Fetching the application source"
    again = [r for r in reasons if r.startswith("Fetching the application source (still")]
    assert again and again[0] == "Fetching the application source (still running after 0 s)"
    assert [r for r in reasons if "(still" not in r] == REASONS
