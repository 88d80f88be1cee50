"""A release exported as an OLM bundle over HTTP (``GET …/<release>/<media_type>/olm-bundle``):
``manifests/`` (the CSV, the CRDs it owns, the other manifests of its version) and
``metadata/annotations.yaml``, from a flat ``bundle.yaml`` or a nested tree; the default CSV
(the default channel's currentCSV), ``?csv=``, its refusals; the same bytes for the same
release; and the export's bounds on what it reads."""

from __future__ import annotations

import gzip
import io
import tarfile
from typing import Any

import pytest
import yaml

from chalicelib.domain.appregistry import olm_bundle
from chalicelib.domain.appregistry.blobs import BlobLimits
from chalicelib.domain.appregistry.errors import InvalidBundle
from tests.conftest import Kiln
from tests.omps import cnr_helpers as c
from tests.omps import operators
from tests.omps.cnr_helpers import NAMESPACE, PACKAGE

BUNDLE = f"/{NAMESPACE}/{PACKAGE}/{{}}/helm/olm-bundle"
PREFIX = "operators.operatorframework.io.bundle."
DEMO_CRD = "demos.demo.kiln.example.com"
BACKUP_CRD = "backups.demo.kiln.example.com"
ACCEPT = {"Accept": "application/gzip"}
CSV_KIND = "ClusterServiceVersion"


def exported(kiln: Kiln, release: str = "1.0.0", query: str = "", **headers: str) -> Any:
    answer = c.get(kiln, BUNDLE.format(release) + query, **{**ACCEPT, **headers})
    assert answer.status_code == 200, answer.body
    assert answer.headers["Content-Type"] == "application/gzip"
    return answer


def annotations(files: dict[str, bytes]) -> dict[str, str]:
    found = yaml.safe_load(files["metadata/annotations.yaml"])["annotations"]
    return {key.removeprefix(PREFIX): value for key, value in found.items()}


def kinds(files: dict[str, bytes]) -> dict[str, tuple[str, str]]:
    """manifests/ by file: (kind, metadata.name)."""
    found = {}
    for name, data in files.items():
        if name.startswith("manifests/"):
            document = yaml.safe_load(data)
            found[name.removeprefix("manifests/")] = (
                document["kind"],
                document["metadata"]["name"],
            )
    return found


def test_a_flat_bundle_with_one_csv(kiln: Kiln) -> None:
    assert c.push(kiln, c.flat_blob(), "1.0.0").status_code == 200
    answer = exported(kiln)
    assert answer.headers["Content-Disposition"] == (
        'attachment; filename="kiln-demo.v0.1.0.bundle.tar.gz"'
    )
    files = c.members(answer.body)
    assert sorted(files) == [
        f"manifests/{DEMO_CRD}.crd.yaml",  # Backup is in bundle.yaml, but not owned
        "manifests/kiln-demo.v0.1.0.clusterserviceversion.yaml",
        "metadata/annotations.yaml",
    ]
    assert annotations(files) == {
        "mediatype.v1": "registry+v1",
        "manifests.v1": "manifests/",
        "metadata.v1": "metadata/",
        "package.v1": PACKAGE,
        "channels.v1": "alpha",
    }
    csv = yaml.safe_load(files["manifests/kiln-demo.v0.1.0.clusterserviceversion.yaml"])
    assert csv == yaml.safe_load(operators.csv_yaml(PACKAGE, "0.1.0"))
    with tarfile.open(fileobj=io.BytesIO(answer.body), mode="r:gz") as tar:
        assert tar.getnames() == sorted(tar.getnames())
        assert [m.name for m in tar.getmembers() if m.isdir()] == ["manifests", "metadata"]


def test_a_flat_bundle_with_several_csvs(kiln: Kiln) -> None:
    blob = c.flat_blob(
        versions=("0.1.0", "0.2.0"), channels={"alpha": "0.2.0", "beta": "0.1.0"}, default="beta"
    )
    assert c.push(kiln, blob, "1.0.0").status_code == 200
    default = c.members(exported(kiln).body)
    assert kinds(default) == {
        f"{DEMO_CRD}.crd.yaml": ("CustomResourceDefinition", DEMO_CRD),
        "kiln-demo.v0.1.0.clusterserviceversion.yaml": (
            "ClusterServiceVersion",
            "kiln-demo.v0.1.0",
        ),
    }
    assert annotations(default)["channels.v1"] == "beta"
    assert annotations(default)["channel.default.v1"] == "beta"
    picked = c.members(exported(kiln, query="?csv=kiln-demo.v0.2.0").body)
    assert kinds(picked) == {
        f"{BACKUP_CRD}.crd.yaml": ("CustomResourceDefinition", BACKUP_CRD),
        f"{DEMO_CRD}.crd.yaml": ("CustomResourceDefinition", DEMO_CRD),
        "kiln-demo.v0.2.0.clusterserviceversion.yaml": (
            "ClusterServiceVersion",
            "kiln-demo.v0.2.0",
        ),
    }
    assert annotations(picked)["channels.v1"] == "alpha"
    assert annotations(picked)["channel.default.v1"] == "beta"
    refused = c.error(c.get(kiln, BUNDLE.format("1.0.0") + "?csv=kiln-demo.v9", **ACCEPT), 404)
    assert refused == {
        "code": "csv-not-found",
        "message": "CSV kiln-demo.v9 is not in the release; it holds: "
        "kiln-demo.v0.1.0, kiln-demo.v0.2.0",
        "details": {"csv": "kiln-demo.v9", "csvs": ["kiln-demo.v0.1.0", "kiln-demo.v0.2.0"]},
    }


def test_channels_without_a_default(kiln: Kiln) -> None:
    # no defaultChannel: the first channel's currentCSV; a CSV no channel heads: every channel
    blob = c.flat_blob(versions=("0.1.0", "0.2.0"), channels={"beta": "0.2.0", "alpha": "0.2.0"})
    assert c.push(kiln, blob, "1.0.0").status_code == 200
    default = c.members(exported(kiln).body)
    assert "kiln-demo.v0.2.0.clusterserviceversion.yaml" in kinds(default)
    assert annotations(default)["channels.v1"] == "beta,alpha"
    assert "channel.default.v1" not in annotations(default)
    older = c.members(exported(kiln, query="?csv=kiln-demo.v0.1.0").body)
    assert annotations(older)["channels.v1"] == "beta,alpha"


def test_a_nested_bundle(kiln: Kiln) -> None:
    extra = {
        "0.2.0/service.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: demo-metrics\n",
        "0.2.0/README.md": "not a manifest\n",
        "0.2.0/empty.yaml": "",
        "0.2.0/deeper/ignored.yaml": "kind: ConfigMap\nmetadata:\n  name: deeper\n",
    }
    blob = c.nested_blob(extra=extra)
    assert c.push(kiln, blob, "1.0.0").status_code == 200
    tree = c.members(blob)
    top = f"{PACKAGE}-ab12cd34"
    default = c.members(exported(kiln).body)
    assert sorted(default) == [
        "manifests/backup.crd.yaml",
        "manifests/demo.crd.yaml",
        "manifests/kiln-demo.v0.2.0.clusterserviceversion.yaml",
        "manifests/service.yaml",
        "metadata/annotations.yaml",
    ]
    for name in ("backup.crd.yaml", "kiln-demo.v0.2.0.clusterserviceversion.yaml"):
        assert default[f"manifests/{name}"] == tree[f"{top}/0.2.0/{name}"]  # verbatim
    assert annotations(default)["channels.v1"] == "alpha"
    older = c.members(exported(kiln, query="?csv=kiln-demo.v0.1.0").body)
    assert sorted(older) == [
        "manifests/demo.crd.yaml",
        "manifests/kiln-demo.v0.1.0.clusterserviceversion.yaml",
        "metadata/annotations.yaml",
    ]
    assert annotations(older)["channels.v1"] == "alpha"  # no channel heads 0.1.0: every one


def test_a_nested_csv_takes_an_owned_crd_from_another_version(kiln: Kiln) -> None:
    files = operators.nested_files()
    files.pop("0.2.0/backup.crd.yaml")
    files["0.1.0/backup.crd.yaml"] = operators.crd_yaml(kind="Backup")
    assert c.push(kiln, c.targz(files), "1.0.0").status_code == 200
    default = c.members(exported(kiln).body)
    assert kinds(default)[f"{BACKUP_CRD}.crd.yaml"] == ("CustomResourceDefinition", BACKUP_CRD)
    assert "manifests/demo.crd.yaml" in default


def test_a_bundle_without_a_top_directory(kiln: Kiln) -> None:
    blob = c.targz({"bundle.yaml": c.bundle_yaml()}, top=None)
    assert c.push(kiln, blob, "1.0.0").status_code == 200
    assert "metadata/annotations.yaml" in c.members(exported(kiln).body)


def test_the_same_release_exports_the_same_bytes(kiln: Kiln) -> None:
    assert c.push(kiln, c.nested_blob(), "1.0.0").status_code == 200
    assert c.push(kiln, c.nested_blob(), "2.0.0").status_code == 200
    first = exported(kiln, "1.0.0").body
    assert exported(kiln, "1.0.0").body == first
    assert exported(kiln, "2.0.0").body == first
    assert first[4:8] == b"\x00\x00\x00\x00"  # no gzip time
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        for member in tar.getmembers():
            assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (
                olm_bundle.FIXED_MTIME,
                0,
                0,
                "",
                "",
            )
            assert member.mode == (0o755 if member.isdir() else 0o644)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"Chart.yaml": "name: a-helm-chart\n"}, "no bundle.yaml and no package file"),
        ({"bundle.yaml": "data: {packages: ''}\n"}, "bundle.yaml holds no package"),
        ({"bundle.yaml": "data: [\n"}, "bundle.yaml is not valid YAML"),
        (
            {"bundle.yaml": "data:\n  packages: 'just text'\n"},
            "bundle.yaml packages is not a list of mappings",
        ),
        (
            {"pkg.yaml": "packageName: kiln-demo\n", "0.1.0/x.yaml": "kind: Service\n"},
            "no ClusterServiceVersion",
        ),
    ],
)
def test_a_release_that_is_no_operator_bundle(
    kiln: Kiln, files: dict[str, str], message: str
) -> None:
    assert c.push(kiln, c.targz(files), "1.0.0").status_code == 200
    refused = c.error(c.get(kiln, BUNDLE.format("1.0.0"), **ACCEPT), 422)
    assert refused["code"] == "invalid-bundle"
    assert message in refused["message"]


def test_an_export_is_read_like_any_release(kiln: Kiln) -> None:
    assert c.push(kiln, c.flat_blob(), "1.0.0").status_code == 200
    refused = c.error(c.get(kiln, BUNDLE.format("7.7.7"), **ACCEPT), 404)
    assert (
        refused["message"] == f"package {NAMESPACE}/{PACKAGE} doesn't exist, v: 7.7.7, type: helm"
    )
    beta = c.error(c.get(kiln, BUNDLE.format("1.0.0"), c.bearer(kiln, "beta"), **ACCEPT), 403)
    assert beta["details"]["scopes"] == ["pull"]
    # any Accept that takes gzip will do (*/* is what most clients send)
    assert exported(kiln, Accept="*/*").body == exported(kiln).body


# -- the export's own defences (blobs the push checks already refuses never reach it) -------
LIMITS = BlobLimits(max_blob_bytes=1 << 20, max_tar_bytes=1 << 20, max_members=50)


def raw_targz(members: list[tarfile.TarInfo], data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return gzip.compress(buffer.getvalue(), mtime=0)


def test_the_export_refuses_members_outside_the_archive() -> None:
    for name in ("../bundle.yaml", "/bundle.yaml", "top/../../x.yaml"):
        info = tarfile.TarInfo(name)
        info.size = 3
        with pytest.raises(InvalidBundle, match="outside the archive|is absolute"):
            olm_bundle.export(raw_targz([info], b"x: 1"), LIMITS)


def test_the_export_ignores_links() -> None:
    files = {"bundle.yaml": c.bundle_yaml()}
    link = tarfile.TarInfo("top/0.1.0/x.yaml")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    blob = c.targz(files, top="top")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]  # type: ignore[union-attr]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))
        tar.addfile(link)
    bundle = olm_bundle.export(gzip.compress(buffer.getvalue()), LIMITS)
    assert bundle.csv == "kiln-demo.v0.1.0"


def test_the_export_bounds_what_it_reads() -> None:
    many = []
    for index in range(60):
        info = tarfile.TarInfo(f"top/f{index}.txt")
        info.size = 1
        many.append(info)
    with pytest.raises(InvalidBundle, match="more than 50 members"):
        olm_bundle.export(raw_targz(many, b"x"), LIMITS)
    big = tarfile.TarInfo("top/bundle.yaml")
    big.size = 2 << 20
    bomb = raw_targz([big], b"\x00" * (2 << 20))
    assert len(bomb) < LIMITS.max_blob_bytes  # small compressed, too large inside
    with pytest.raises(InvalidBundle, match="larger than"):
        olm_bundle.export(bomb, LIMITS)
    with pytest.raises(InvalidBundle, match="larger than"):
        olm_bundle.export(bomb, BlobLimits(len(bomb) - 1, 1 << 30, 50))
