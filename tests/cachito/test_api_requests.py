"""The Cachito face's requests over HTTP: creating one (every 400 of the schema and of Cachito's
own checks, representatives, the repository address guard, idempotent POST) and reading it
(tenants, progress, packages and dependencies, errors). tests/cachito/test_api_updates.py has
workers' changes and what a request produced."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from chalicelib.adapters import records
from chalicelib.adapters.models import JobModel
from chalicelib.faces.cachito.routing import NOT_FOUND, UNAUTHORIZED
from tests.cachito import helpers as h
from tests.cachito.helpers import REF, REPO, V1
from tests.conftest import Kiln

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
PMS = "['gomod', 'npm', 'pip', 'git-submodule', 'yarn', 'rubygems']"


def post(kiln: Kiln, payload: Any, **options: Any) -> Any:
    return kiln.call("POST", f"{V1}/requests", payload, **options)


def error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.body
    return str(response.json_body["error"])


def total(kiln: Kiln) -> int:
    return int(h.get(kiln, "/requests", role="admin").json_body["meta"]["total"])


# -- POST /requests -------------------------------------------------------------------------------
def test_a_new_request_is_answered_as_cachito_does(kiln: Kiln) -> None:
    created = h.create(kiln, flags=["include-git-dir", "cgo-disable"])
    assert created["state"] == "in_progress"
    assert created["state_reason"] == "The request was initiated"
    assert created["packages"] == [] and created["dependencies"] == []
    assert created["pkg_managers"] == ["gomod"]  # the default
    assert created["flags"] == ["cgo-disable", "include-git-dir"]
    assert created["user"] == "user@demo" and created["submitted_by"] is None
    assert created["repo"] == REPO and created["ref"] == REF
    assert created["environment_variables"] == {}
    assert STAMP.match(created["created"]) and created["created"] == created["updated"]
    assert created["state_history"] == [
        {
            "state": "in_progress",
            "state_reason": "The request was initiated",
            "updated": created["updated"],
        }
    ]
    base = f"http://localhost{V1}/requests/{created['id']}"
    assert created["configuration_files"] == f"{base}/configuration-files"
    assert created["content_manifest"] == f"{base}/content-manifest"
    assert created["environment_variables_info"] == f"{base}/environment-variables"
    assert created["logs"] == {"url": f"{base}/logs"}
    assert "error_origin" not in created and "error_type" not in created
    again = h.get(kiln, f"/requests/{created['id']}").json_body
    assert again == created


def test_ids_are_integers_counting_up_and_empty_managers_mean_source_only(kiln: Kiln) -> None:
    first = h.create(kiln)
    second = h.create(kiln, pkg_managers=[])
    assert isinstance(first["id"], int) and second["id"] == first["id"] + 1
    assert second["pkg_managers"] == []


def test_posting_needs_a_token(kiln: Kiln) -> None:
    response = post(kiln, h.body(), headers={"Content-Type": "application/json"})
    assert error(response, 401) == UNAUTHORIZED
    assert total(kiln) == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "None is not of type 'object'"),
        ([], "[] is not of type 'object'"),
        ({"repo": REPO}, "'ref' is a required property"),
        ({"ref": REF}, "'repo' is a required property"),
        (
            {"repo": REPO, "ref": REF, "username": "x"},
            "Additional properties are not allowed ('username' was unexpected)",
        ),
        ({"repo": REPO, "ref": "abc"}, "'abc' is too short"),
        ({"repo": REPO, "ref": REF + "a"}, f"'{REF}a' is too long"),
        (
            {"repo": REPO, "ref": REF.upper()},
            f"'{REF.upper()}' does not match '^[a-f0-9]{{40}}$'",
        ),
        ({"repo": "x" * 201, "ref": REF}, f"'{'x' * 201}' is too long"),
        ({"repo": REPO, "ref": REF, "pkg_managers": "gomod"}, "'gomod' is not of type 'array'"),
        ({"repo": REPO, "ref": REF, "pkg_managers": ["x"]}, f"'x' is not one of {PMS}"),
        ({"repo": REPO, "ref": REF, "flags": "a"}, "'a' is not of type 'array'"),
        (
            {"repo": REPO, "ref": REF, "packages": {"cargo": []}},
            "Additional properties are not allowed ('cargo' was unexpected)",
        ),
        (
            {"repo": REPO, "ref": REF, "pkg_managers": ["npm"], "packages": {"npm": {}}},
            "{} is not of type 'array'",
        ),
        (
            {"repo": REPO, "ref": REF, "packages": {"npm": [{"path": ".", "x": 1}]}},
            "Additional properties are not allowed ('x' was unexpected)",
        ),
        (
            {"repo": REPO, "ref": REF, "dependency_replacements": [{"name": "a", "type": "gomod"}]},
            "'version' is a required property",
        ),
    ],
)
def test_the_schema_comes_first_with_jsonschema_wording(
    kiln: Kiln, payload: Any, message: str
) -> None:
    assert error(post(kiln, payload)) == message
    assert total(kiln) == 0


def test_a_body_that_is_not_json(kiln: Kiln) -> None:
    assert error(post(kiln, "{not json")) == "Request body is not valid JSON"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"pkg_managers": ["rubygems"]},
            "The following package managers are not enabled: rubygems",
        ),
        ({"flags": ["bogus", "include-git-dir"]}, "Invalid/Inactive flag(s): bogus"),
        ({"flags": ["pip-dev-preview"]}, "Invalid/Inactive flag(s): pip-dev-preview"),
        (
            {"packages": {"npm": [{"path": "client"}]}},
            'The following package managers in the "packages" object do not apply: npm',
        ),
        (
            {"pkg_managers": ["npm"], "packages": {"npm": [{}]}},
            'The value of "packages.npm" must be an array of objects with the following keys: path',
        ),
        (
            {"pkg_managers": ["npm"], "packages": {"npm": [{"path": "../up"}]}},
            'The "path" values in the "packages.npm" value must be to a relative path in the '
            "source repository",
        ),
        (
            {"pkg_managers": ["gomod"], "packages": {"gomod": [{"path": "/etc"}]}},
            'The "path" values in the "packages.gomod" value must be to a relative path in the '
            "source repository",
        ),
        (
            {"pkg_managers": ["pip"], "packages": {"pip": [{"requirements_files": ["a/../../r"]}]}},
            'The "requirements_files" values in the "packages.pip" value must be to a relative '
            "path in the source repository",
        ),
        (
            {"pkg_managers": ["npm", "yarn"]},
            "The following paths cannot be processed by both 'npm' and 'yarn': .",
        ),
        (
            {
                "pkg_managers": ["npm", "yarn"],
                "packages": {"npm": [{"path": "web/"}], "yarn": [{"path": "web"}]},
            },
            "The following paths cannot be processed by both 'npm' and 'yarn': web",
        ),
        (
            {
                "pkg_managers": ["npm"],
                "dependency_replacements": [{"name": "a", "type": "npm", "version": "1"}],
            },
            "Dependency replacements are not yet supported for the npm package manager",
        ),
        (
            {
                "pkg_managers": ["pip"],
                "dependency_replacements": [{"name": "a", "type": "pip", "version": "1"}],
            },
            "Dependency replacements are not yet supported for the pip package manager",
        ),
        (
            {"dependency_replacements": [{"name": "a", "type": "gomod", "version": "1", "x": "y"}]},
            "A dependency replacement must be a JSON object with the following keys: name, type, "
            "version. It may also contain the following optional keys: new_name.",
        ),
        (
            {"dependency_replacements": [{"name": "a", "type": "gomod", "version": None}]},
            'The "version" key of the dependency replacement must be a string',
        ),
    ],
)
def test_cachitos_own_checks_refuse_before_anything_is_stored(
    kiln: Kiln, changes: dict[str, Any], message: str
) -> None:
    assert error(post(kiln, h.body(**changes))) == message
    assert total(kiln) == 0  # upstream stored some of these first (orphan requests)


def test_rubygems_replacements_are_refused_by_name_once_rubygems_is_enabled(kiln: Kiln) -> None:
    kiln.configure(cachito_package_managers="gomod,npm,pip,yarn,rubygems,git-submodule")
    replacements = [{"name": "a", "type": "rubygems", "version": "1"}]
    response = post(kiln, h.body(pkg_managers=["rubygems"], dependency_replacements=replacements))
    assert error(response) == (
        "Dependency replacements are not yet supported for the RubyGems package manager"
    )
    assert h.create(kiln, pkg_managers=["rubygems"])["pkg_managers"] == ["rubygems"]


def test_gomod_replacements_and_separate_npm_yarn_paths_are_accepted(kiln: Kiln) -> None:
    replacements = [{"name": "a", "type": "gomod", "version": "v1.0.0", "new_name": "b"}]
    assert h.create(kiln, dependency_replacements=replacements)["state"] == "in_progress"
    packages = {"npm": [{"path": "web"}], "yarn": [{"path": "cli"}]}
    created = h.create(kiln, pkg_managers=["npm", "yarn"], packages=packages)
    assert created["pkg_managers"] == ["npm", "yarn"]
    assert h.record(created["id"]).packages_spec == packages


def test_git_submodule_excludes_non_root_packages_when_the_operator_pairs_them(
    kiln: Kiln,
) -> None:
    kiln.configure(cachito_exclusive_pairs="npm:yarn,npm:git-submodule")
    payload = h.body(pkg_managers=["npm", "git-submodule"], packages={"npm": [{"path": "x"}]})
    assert error(post(kiln, payload)).startswith(
        "Cannot process non-root packages with 'npm' when 'git-submodule' is also set."
    )


def test_only_representatives_may_send_user(kiln: Kiln) -> None:
    response = post(kiln, h.body(user="tbrady@DOMAIN.LOCAL"))
    assert error(response, 403) == (
        "You are not authorized to create a request on behalf of another user"
    )
    assert total(kiln) == 0
    kiln.configure(cachito_representatives="osbs@demo, user@demo")
    created = h.create(kiln, user="tbrady@DOMAIN.LOCAL")
    assert created["user"] == "tbrady@DOMAIN.LOCAL" and created["submitted_by"] == "user@demo"
    listed = h.get(kiln, "/requests").json_body["items"][0]
    assert listed["user"] == "tbrady@DOMAIN.LOCAL" and listed["submitted_by"] == "user@demo"


@pytest.mark.parametrize(
    ("repo", "says"),
    [
        ("git@github.com:org/repo.git", 'The "repo" value must be an http or https URL'),
        ("ssh://github.com/org/repo.git", 'The "repo" value must be an http or https URL'),
        ("file:///etc/passwd", 'The "repo" value must be an http or https URL'),
        ("http://127.0.0.1/repo.git", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.0.0.8/repo.git", "private"),
        ("https://user:secret@github.com/org/repo.git", "credentials in the URL"),
    ],
)
def test_repository_urls_pass_the_address_guard(kiln: Kiln, repo: str, says: str) -> None:
    assert says in error(post(kiln, h.body(repo=repo)))
    assert total(kiln) == 0


def test_the_operator_may_allow_internal_repository_hosts(kiln: Kiln) -> None:
    kiln.configure(cachito_allow="127.0.0.0/8")
    assert h.create(kiln, repo="http://127.0.0.1:8080/repo.git")["state"] == "in_progress"


def test_a_retried_post_returns_the_request_it_created(kiln: Kiln) -> None:
    first = h.create(kiln, pkg_managers=["npm"])
    h.progress(kiln, first["id"], "Fetching the application source")
    again = h.create(kiln, pkg_managers=["npm"])
    assert again["id"] == first["id"]
    assert again["state_reason"] == "Fetching the application source"  # as it is now
    reordered = kiln.call(
        "POST", f"{V1}/requests", {"pkg_managers": ["npm"], "ref": REF, "repo": REPO}
    )
    assert reordered.json_body["id"] == first["id"]  # the same body, keys in another order
    assert total(kiln) == 1
    assert h.create(kiln, pkg_managers=["gomod"])["id"] != first["id"]  # another body
    assert h.create(kiln, tenant="beta", pkg_managers=["npm"])["id"] != first["id"]
    assert h.create(kiln, role="admin", pkg_managers=["npm"])["id"] != first["id"]
    assert total(kiln) == 4


def test_the_same_post_after_the_window_is_a_new_request(kiln: Kiln) -> None:
    kiln.configure(cachito_idempotency_seconds=1)
    first = h.create(kiln)
    time.sleep(2.2)
    assert h.create(kiln)["id"] == first["id"] + 1


def test_a_post_that_finds_a_claim_without_its_request_stores_it(kiln: Kiln) -> None:
    """A creator that died between its claim and its request leaves no retry stuck."""
    first = h.create(kiln)
    h.record(first["id"]).delete()
    again = h.create(kiln)
    assert again["id"] == first["id"] and again["state"] == "in_progress"
    assert h.record(first["id"]).job_id  # its job was started again


# -- GET /requests/{id} ---------------------------------------------------------------------------
def test_unknown_other_tenants_and_malformed_ids_are_not_found(kiln: Kiln) -> None:
    created = h.create(kiln)
    for path in ("/requests/999", "/requests/abc", "/requests/-1", "/requests/1.0"):
        assert error(h.get(kiln, path), 404) == NOT_FOUND
    assert error(h.get(kiln, f"/requests/{created['id']}", tenant="beta"), 404) == NOT_FOUND
    for role in ("admin", "worker"):
        seen = h.get(kiln, f"/requests/{created['id']}", tenant="beta", role=role)
        assert seen.status_code == 200 and seen.json_body["id"] == created["id"]


def test_unknown_query_parameters_are_refused(kiln: Kiln) -> None:
    created = h.create(kiln)
    response = h.get(kiln, f"/requests/{created['id']}?verbose=true")
    assert error(response) == "Extra query parameter(s) verbose not in spec"


def test_progress_moves_updated_and_the_history_is_newest_first(kiln: Kiln) -> None:
    created = h.create(kiln)
    for reason in ("Fetching the application source", "Fetching the gomod dependencies"):
        time.sleep(0.01)
        h.progress(kiln, created["id"], reason)
    shown = h.get(kiln, f"/requests/{created['id']}").json_body
    assert shown["state_reason"] == "Fetching the gomod dependencies"
    assert shown["updated"] > created["updated"]
    reasons = [entry["state_reason"] for entry in shown["state_history"]]
    assert reasons == [
        "Fetching the gomod dependencies",
        "Fetching the application source",
        "The request was initiated",
    ]


def test_a_complete_request_shows_packages_and_the_dependency_union(kiln: Kiln) -> None:
    created = h.create(kiln, pkg_managers=["gomod", "npm"])
    h.complete(kiln, created["id"])
    shown = h.get(kiln, f"/requests/{created['id']}").json_body
    assert shown["state"] == "complete" and shown["state_reason"] == "Completed successfully"
    names = [(d["type"], d.get("dev"), d["name"]) for d in shown["dependencies"]]
    assert names == [
        ("gomod", None, "github.com/pkg/errors"),
        ("npm", False, "abbrev"),
        ("npm", True, "chai"),
    ]
    gomod, npm = shown["packages"]
    assert "path" not in gomod and npm["path"] == "client"
    assert gomod["dependencies"][0]["replaces"] == {
        "name": "github.com/pkg/errors",
        "type": "gomod",
        "version": "v0.8.0",
    }
    assert "dev" not in gomod["dependencies"][0]  # only npm, pip and yarn carry it
    assert all("purl" not in d and "sha256" not in d for d in shown["dependencies"])
    assert shown["environment_variables"] == {"GOCACHE": "deps/gomod", "GOSUMDB": "off"}
    listed = h.get(kiln, "/requests").json_body["items"][0]
    assert listed["packages"] == 2 and listed["dependencies"] == 3  # the union
    assert "state_history" not in listed and "configuration_files" not in listed


def test_a_failed_request_shows_its_error_origin_and_type(kiln: Kiln) -> None:
    created = h.create(kiln, pkg_managers=["npm"])
    text = (
        "The npm-shrinkwrap.json or package-lock.json file must be present for the npm "
        "package manager"
    )
    h.fail(kiln, created["id"], f"BuildFailed: InvalidRepoStructure: {text}")
    shown = h.get(kiln, f"/requests/{created['id']}").json_body
    assert shown["state"] == "failed" and shown["state_reason"] == text
    assert shown["error_origin"] == "client" and shown["error_type"] == "InvalidRepoStructure"
    assert shown["packages"] == [] and shown["dependencies"] == []


def test_a_requests_build_job_is_not_listed_as_an_ims_job(kiln: Kiln) -> None:
    """The request's job is filed under a kind of its own: IMS's job list never shows it."""
    kiln.register_host(xname="cachito-host", job_types=("cachito",))
    request_id = h.create(kiln)["id"]
    assert h.record(request_id).job_id
    assert kiln.call("GET", "/apis/ims/v3/jobs").json_body == []
    assert kiln.call("GET", "/apis/ims/v3/jobs", role="admin").json_body == []
    job_id = h.record(request_id).job_id
    for method, role in (("GET", "admin"), ("DELETE", "admin"), ("PATCH", "worker")):
        body = {"job_status": "error"} if method == "PATCH" else None
        answer = kiln.call(method, f"/apis/ims/v3/jobs/{job_id}", body, role=role)
        assert answer.status_code == 404, (method, answer.body)
    assert records.find(JobModel, job_id) is not None  # IMS's DELETE did not remove it
