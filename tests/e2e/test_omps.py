"""The OMPS face and Kiln's app registry as their users meet them, against the `make up` stack:
a push as the contract's curl example sends it, pushes as OSBS's client sends them
(tests/omps/osbs_client.py), the marketplace's read path through the app registry (namespace
listing, the default release's manifest, its blob by digest), the release as an OLM bundle,
an unknown path, and a delete of every release."""

from __future__ import annotations

import io
import tarfile

import pytest
import requests
import yaml

from infra.local.process import StackProcess
from tests.omps.operators import PACKAGE, flat_operator
from tests.omps.osbs_client import OMPS, OMPSError

pytestmark = pytest.mark.slow

ORG = "e2e-operators"


def test_push_read_and_delete_as_clients_do(stack: StackProcess) -> None:
    omps_url, registry = stack.info["omps_url"], stack.info["appregistry_url"]
    token = stack.info["tokens"]["user"]
    archive = flat_operator()

    # the contract's curl example: an explicit version, multipart field "file"
    pushed = requests.post(
        f"{omps_url}/v1/{ORG}/{PACKAGE}/zipfile/1.1.5",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": ("manifests.zip", archive)},
        timeout=60,
    )
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {
        "organization": ORG,
        "repo": PACKAGE,
        "version": "1.1.5",
        "extracted_files": ["crd.yml", "csv.yaml", "packages.yaml"],
    }

    # OSBS: v2, no version, the token read verbatim from its secret file
    osbs = OMPS(omps_url, token, backoff=0.1)
    versions = [osbs.push_archive(ORG, archive)["version"] for _ in range(2)]
    assert versions == ["2.0.0", "3.0.0"]
    with pytest.raises(OMPSError, match="OMPS service request failed with error: "):
        osbs.push_archive(ORG, b"not a zip")

    # the marketplace's read path
    auth = {"Authorization": token}
    listed = requests.get(
        f"{registry}/api/v1/packages", params={"namespace": ORG}, headers=auth, timeout=30
    ).json()
    assert [(p["name"], p["default"], p["releases"]) for p in listed] == [
        (f"{ORG}/{PACKAGE}", "3.0.0", ["3.0.0", "2.0.0", "1.1.5"])
    ]
    manifest = requests.get(
        f"{registry}/api/v1/packages/{ORG}/{PACKAGE}/3.0.0/helm", headers=auth, timeout=30
    ).json()
    digest = manifest["content"]["digest"]
    blob = requests.get(
        f"{registry}/api/v1/packages/{ORG}/{PACKAGE}/blobs/sha256/{digest}",
        headers=auth,
        timeout=30,
    )
    assert blob.status_code == 200 and blob.headers["Content-Type"] == "application/x-gzip"
    with tarfile.open(fileobj=io.BytesIO(blob.content)) as bundle:
        (member,) = [m for m in bundle.getmembers() if m.isfile()]
        assert member.name.startswith(f"{PACKAGE}-") and member.name.endswith("/bundle.yaml")
        data = yaml.safe_load(bundle.extractfile(member).read())["data"]  # type: ignore[union-attr]
    assert yaml.safe_load(data["packages"])[0]["packageName"] == PACKAGE
    anonymous = requests.get(f"{registry}/api/v1/packages", params={"namespace": ORG}, timeout=30)
    assert anonymous.json() == []  # private: not listed to callers who may not read it

    # the same release as an OLM bundle
    olm = requests.get(
        f"{registry}/api/v1/packages/{ORG}/{PACKAGE}/3.0.0/helm/olm-bundle",
        headers=auth,
        timeout=30,
    )
    assert olm.status_code == 200, olm.text
    with tarfile.open(fileobj=io.BytesIO(olm.content)) as bundle:
        names = bundle.getnames()
        annotations = yaml.safe_load(bundle.extractfile("metadata/annotations.yaml").read())  # type: ignore[union-attr]
    assert any(name.startswith("manifests/") for name in names)
    assert annotations["annotations"]["operators.operatorframework.io.bundle.package.v1"] == PACKAGE

    unknown = requests.get(f"{omps_url}/v2/{ORG}", timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"] == "NotFound"

    deleted = requests.delete(
        f"{omps_url}/v2/{ORG}/{PACKAGE}", headers={"Authorization": token}, timeout=30
    )
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "organization": ORG,
        "repo": PACKAGE,
        "deleted": ["3.0.0", "2.0.0", "1.1.5"],
    }
    again = requests.get(
        f"{registry}/api/v1/packages", params={"namespace": ORG}, headers=auth, timeout=30
    )
    assert again.json() == []
