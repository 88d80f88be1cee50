"""What an organization's configuration does to a push (omps-behaviour.md §8): registry
replacement (plain and regexp), the package name suffix (v1 and v2), CSV annotations, public
packages; and who may push (Kiln's tenants: configured writers, or the namespace's claimant)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from chalicelib.adapters.appregistry_models import AppPackageModel
from chalicelib.container import container
from chalicelib.domain.appregistry.callers import ANONYMOUS
from chalicelib.domain.omps import package_scan
from tests.conftest import Kiln
from tests.omps import operators as ops
from tests.omps.operators import IMAGE, PACKAGE, assert_error, post_zip

ORG = "acme"
SUFFIX = "-prod"


def configure(kiln: Kiln, **options: Any) -> None:
    kiln.configure(omps_organizations=json.dumps({ORG: options}))


def pushed(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.body
    body: dict[str, Any] = response.json_body
    return body


def nested_tree(repo: str, version: str) -> dict[str, str]:
    """A nested release's files, by their path below the bundle's directory."""
    stored = ops.stored_bundle(ORG, repo, version)
    (folder,) = [name for name in stored if "/" not in name]
    return {
        name[len(folder) + 1 :]: data.decode()
        for name, data in stored.items()
        if name != folder and data
    }


def flat_csv_text(repo: str, version: str) -> str:
    stored = ops.stored_bundle(ORG, repo, version)
    (bundle,) = [data for name, data in stored.items() if name.endswith("/bundle.yaml")]
    text: str = yaml.safe_load(bundle)["data"]["clusterServiceVersions"]
    return text


# -- replace_registry -----------------------------------------------------------------------------
def test_plain_replacement_rewrites_every_occurrence_comments_included(kiln: Kiln) -> None:
    configure(
        kiln,
        replace_registry=[
            {"old": "quay.io/kiln/", "new": "registry.example.com/kiln/"},
            {"old": "registry.example.com/kiln/demo", "new": "registry.example.com/kiln/prod"},
        ],
    )
    pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.nested_operator()))
    csv = nested_tree(PACKAGE, "1.0.0")[f"0.1.0/{PACKAGE}.v0.1.0.clusterserviceversion.yaml"]
    assert "quay.io" not in csv
    new_image = "registry.example.com/kiln/prod-operator:v0.1.0"  # the rules apply in order
    assert csv.count(new_image) == 4  # comment, annotation, description, container
    assert csv.startswith(f"# the operator at version 0.1.0; image {new_image}\n")


def test_regexp_replacement_is_multiline_with_back_references(kiln: Kiln) -> None:
    rule = {
        "old": r"quay\.io/(\w+)/demo-operator:(v[\d.]+)$",
        "new": r"mirror.io/\1/op@\2",
        "regexp": True,
    }
    configure(kiln, replace_registry=[rule])
    pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))
    (csv,) = yaml.safe_load(flat_csv_text(PACKAGE, "1.0.0"))
    assert csv["metadata"]["annotations"]["containerImage"] == "mirror.io/kiln/op@v0.1.0"
    container_spec = csv["spec"]["install"]["spec"]["deployments"][0]["spec"]["template"]["spec"]
    assert container_spec["containers"][0]["image"] == "mirror.io/kiln/op@v0.1.0"
    # not at the end of its line: "$" does not match there
    assert csv["spec"]["description"] == f"Runs {IMAGE} for the demo."


def test_replacement_runs_before_validation(kiln: Kiln) -> None:
    configure(kiln, replace_registry=[{"old": "installModes:", "new": "notInstallModes:"}])
    response = post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator())
    assert response.status_code == 400, response.body
    assert "csv spec.installModes not defined" in response.json_body["validation_info"]["errors"]


# -- package_name_suffix --------------------------------------------------------------------------
def test_in_v2_the_suffix_names_the_repo_and_is_written_into_the_package_file(kiln: Kiln) -> None:
    configure(kiln, package_name_suffix=SUFFIX)
    body = pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.nested_operator()))
    assert (body["repo"], body["version"]) == (PACKAGE + SUFFIX, "1.0.0")
    package_file = nested_tree(PACKAGE + SUFFIX, "1.0.0")[f"{PACKAGE}.package.yaml"]
    expected = ops.nested_files()[f"{PACKAGE}.package.yaml"].replace(
        f"packageName: {PACKAGE}\n", f"packageName: {PACKAGE}{SUFFIX}\n"
    )
    assert package_file == expected  # the comment is still there, nothing else changed
    assert package_file.startswith("# the operator's package")
    assert ops.release_names(ORG, PACKAGE) == []


@pytest.mark.parametrize(
    ("line", "rewritten"),
    [
        (f'packageName: "{PACKAGE}"  # quoted', f'packageName: "{PACKAGE}{SUFFIX}"  # quoted'),
        (f"'packageName': '{PACKAGE}'", f"'packageName': '{PACKAGE}{SUFFIX}'"),
        (f"packageName:   {PACKAGE}   # spaced", f"packageName:   {PACKAGE}{SUFFIX}   # spaced"),
    ],
)
def test_the_suffix_keeps_the_package_line_s_quoting_and_comment(
    kiln: Kiln, line: str, rewritten: str
) -> None:
    configure(kiln, package_name_suffix=SUFFIX)
    files = ops.nested_files()
    package_file = f"{PACKAGE}.package.yaml"
    original = files[package_file]
    files[package_file] = str(original).replace(f"packageName: {PACKAGE}", line)
    assert (
        pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.zip_of(files)))["repo"] == PACKAGE + SUFFIX
    )
    stored = nested_tree(PACKAGE + SUFFIX, "1.0.0")[package_file]
    assert stored == str(files[package_file]).replace(line, rewritten)


def test_a_flow_style_package_file_is_dumped_again_with_the_suffix() -> None:
    text = f"{{packageName: {PACKAGE}, channels: [{{name: a, currentCSV: b}}]}}\n"
    rewritten = package_scan.rewrite_text(text, PACKAGE + SUFFIX)
    assert yaml.safe_load(rewritten) == {
        "packageName": PACKAGE + SUFFIX,
        "channels": [{"name": "a", "currentCSV": "b"}],
    }


def test_a_name_that_already_ends_with_the_suffix_is_kept(kiln: Kiln) -> None:
    configure(kiln, package_name_suffix=SUFFIX)
    archive = ops.flat_operator(package=PACKAGE + SUFFIX)
    assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", archive))["repo"] == PACKAGE + SUFFIX


def test_in_v1_the_url_repo_must_already_carry_the_suffix(kiln: Kiln) -> None:
    configure(kiln, package_name_suffix=SUFFIX)
    body = pushed(post_zip(kiln, f"/v1/{ORG}/{PACKAGE}{SUFFIX}/zipfile", ops.flat_operator()))
    assert (body["repo"], body["version"]) == (PACKAGE + SUFFIX, "1.0.0")
    refused = post_zip(kiln, f"/v1/{ORG}/{PACKAGE}/zipfile", ops.flat_operator())
    assert refused.status_code == 400, refused.body
    mismatch = (
        f"The packageName ({PACKAGE}{SUFFIX}) in bundle does not match repository name "
        f"({PACKAGE}) provided as command line argument."
    )
    assert mismatch in refused.json_body["validation_info"]["errors"]


# -- csv_annotations ------------------------------------------------------------------------------
def test_annotations_are_set_on_every_csv_with_the_suffixed_name(kiln: Kiln) -> None:
    configure(
        kiln,
        package_name_suffix=SUFFIX,
        csv_annotations=[
            {"name": "kiln.example.com/package", "value": "pkg.{package_name}"},
            {"name": "containerImage", "value": "overridden"},
        ],
    )
    pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.nested_operator()))
    tree = nested_tree(PACKAGE + SUFFIX, "1.0.0")
    csvs = [yaml.safe_load(text) for name, text in tree.items() if "clusterserviceversion" in name]
    assert len(csvs) == 2
    for csv in csvs:
        annotations = csv["metadata"]["annotations"]
        assert annotations["kiln.example.com/package"] == f"pkg.{PACKAGE}{SUFFIX}"
        assert annotations["containerImage"] == "overridden"
        assert annotations["alm-examples"] == "[]"  # the others stay
    crd = tree["0.1.0/demo.crd.yaml"]
    assert crd == ops.crd_yaml()  # not a CSV: untouched


# -- public ---------------------------------------------------------------------------------------
def test_a_public_organization_publishes_public_packages(kiln: Kiln) -> None:
    configure(kiln, public=True)
    pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))
    assert AppPackageModel.get(ORG, PACKAGE).visibility == "public"
    (listed,) = container().app_registry.packages(ANONYMOUS, ORG)
    assert (listed.package, listed.visibility) == (PACKAGE, "public")


def test_packages_are_private_by_default(kiln: Kiln) -> None:
    pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))
    assert AppPackageModel.get(ORG, PACKAGE).visibility == "private"
    assert container().app_registry.packages(ANONYMOUS, ORG) == []


# -- who may push ---------------------------------------------------------------------------------
def forbidden(response: Any, message: str, scope: str) -> None:
    name = f"{ORG}/{PACKAGE}"
    registry_message = f"Unauthorized access for: {name}"
    assert_error(
        response,
        403,
        "QuayAuthorizationError",
        f"{message}{registry_message}",
        quay_response={
            "error": {
                "code": "forbidden",
                "message": registry_message,
                "details": {"package": name, "scopes": [scope]},
            }
        },
    )


def test_another_tenant_cannot_push_to_a_claimed_organization(kiln: Kiln) -> None:
    pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))  # tenant demo claims acme
    other = kiln.token("other")
    lookup = f"Cannot retrieve information about package {ORG}/{PACKAGE}: "
    forbidden(
        post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator(), authorization=other),
        lookup,
        "pull",
    )
    response = post_zip(kiln, f"/v2/{ORG}/zipfile/7.0.0", ops.flat_operator(), authorization=other)
    forbidden(response, "Failed to push manifest: ", "push")
    assert ops.release_names(ORG, PACKAGE) == ["1.0.0"]


def test_configured_tenants_are_the_only_writers(kiln: Kiln) -> None:
    configure(kiln, tenants=["alpha"])
    response = post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator())  # tenant demo
    forbidden(response, "Failed to push manifest: ", "create")
    alpha = kiln.token("alpha")
    assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator(), authorization=alpha))
    admin = kiln.token("demo", "admin")
    body = pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator(), authorization=admin))
    assert body["version"] == "2.0.0"
    assert ops.release_names(ORG, PACKAGE) == ["1.0.0", "2.0.0"]
