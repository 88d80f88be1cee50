"""Realistic package data, as a build host uploads it in packages.json (pip, npm, yarn,
gomod, go-package, git submodules), for the content manifest and SBOM tests."""

from __future__ import annotations

from typing import Any

from packageurl import PackageURL

from chalicelib.cachito_purl import (
    download_purl,
    file_purl,
    forge_purl,
    git_dependency_purl,
    golang_purl,
    npm_purl,
    pypi_purl,
    vcs_purl,
)

REF_A = "4a0c1b6f1e3f7c2d9b8a7e6d5c4b3a2f1e0d9c8b"
REF_C = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
APPR = "58c88e4952e95935c0dd72d4a24b0c44f2249f5b"
SUB = "522fb816eec295ad58bc488c74b2b46748d471b2"
POSITIVE = "97edff6f525f192a3f83cea1944765f769ae2678"
H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64
REPO_A = "https://github.com/Example/Web-App.git"
REPO_C = "https://gitlab.com/example/go-svc.git"
GO_SVC, TOOLS, V_TOOLS = "gitlab.com/example/go-svc", "gitlab.com/example/go-svc/tools", "v0.0.0"
SVC = "pkg:golang/gitlab.com%2Fexample%2Fgo-svc"


def canon(kind: str, name: str, version: str | None = None, **parts: Any) -> str:
    """A canonical purl as packageurl-python writes it (``namespace``, ``subpath``, qualifiers)."""
    namespace, subpath = parts.pop("namespace", None), parts.pop("subpath", None)
    purl = PackageURL(kind, namespace, name, version, parts or None, subpath)
    return purl.to_string()


def dep(name: str, kind: str, version: str | None, purl: str, canonical: str, **extra: Any) -> dict:
    record = {"name": name, "type": kind, "version": version, "replaces": None, "purl": purl}
    record |= {"canonical_purl": canonical, "sha256": None, "bundle_path": None, "requires": []}
    if kind in ("npm", "pip", "yarn"):
        record["dev"] = False
    return record | extra


def pkg(name: str, kind: str, version: str, purls: tuple[str, str], deps: list, **extra: Any):
    purl, canonical = purls
    record = {"name": name, "type": kind, "version": version, "purl": purl}
    return record | {"canonical_purl": canonical, "dependencies": deps} | extra


def pypi(name: str, version: str, **extra: Any) -> dict:
    canonical = canon("pypi", name.lower().replace("_", "-"), version)
    return dep(name, "pip", version, pypi_purl(name, version), canonical, **extra)


def npm(name: str, version: str, kind: str = "npm", **extra: Any) -> dict:
    scope, _, short = name.rpartition("/")
    canonical = canon("npm", short, version, namespace=scope or None)
    return dep(name, kind, version, npm_purl(name, version), canonical, **extra)


def golang(name: str, version: str | None, kind: str, **extra: Any) -> dict:
    if version and version.startswith("./"):  # a local replace: the parent module's purls
        purls = (f"{SVC}@v1.2.0#{version[2:]}", f"pkg:golang/{GO_SVC}@v1.2.0#{version[2:]}")
    else:
        namespace, _, short = name.rpartition("/")
        canonical = canon("golang", short, version, namespace=namespace or None)
        purls = (golang_purl(name, version), canonical)
    return dep(name, kind, version, *purls, **extra)


URL_DEP = "https://github.com/quay/appr/archive/58c88e49.tar.gz#egg=cnr_server"
APPR_GIT = "git+https://github.com/quay/appr.git"
TARBALL = "https://registry.example.com/left-pad/-/left-pad-1.3.0.tgz"
NPM_GIT = f"git+https://github.com/kevva/is-positive.git#{POSITIVE}"


def pip_package(deps: list | None = None) -> dict:
    """The pip package at the root of REPO_A: index, URL, git and build (dev) dependencies."""
    url_canonical = canon("generic", "cnr-server", download_url=URL_DEP, checksum=f"sha256:{H3}")
    url_purl = download_purl("cnr_server", URL_DEP, H3)
    default = [
        pypi("aiowsgi", "0.7", sha256=H1, bundle_path="deps/pip/aiowsgi/aiowsgi-0.7.tar.gz"),
        pypi("Flask_Login", "0.5.0", requires=["pkg:pypi/aiowsgi@0.7"]),
        dep("cnr_server", "pip", f"{URL_DEP}&cachito_hash=sha256:{H3}", url_purl, url_canonical),
        dep("appr", "pip", f"{APPR_GIT}@{APPR}", vcs_purl("appr", APPR_GIT, APPR),
            canon("github", "appr", APPR, namespace="quay")),
        pypi("setuptools", "69.0.3", dev=True),
    ]  # fmt: skip
    default[2]["sha256"] = H3
    purls = (
        vcs_purl("web-app", REPO_A, REF_A),
        canon("github", "web-app", REF_A, namespace="example"),
    )
    return pkg("web-app", "pip", "1.0.0", purls, default if deps is None else deps)


def npm_package() -> dict:
    """The npm package at web/ui of REPO_A: registry (scoped too), tarball, git, file:, github:."""
    semver = "github:example/semver#v7.5.4"
    deps = [
        npm("chai", "4.2.0", sha256=H2, requires=["pkg:npm/deep-eql@3.0.1"]),
        npm("deep-eql", "3.0.1"),
        npm("@types/node", "20.11.5", dev=True),
        dep("left-pad", "npm", TARBALL, download_purl("left-pad", TARBALL),
            canon("generic", "left-pad", download_url=TARBALL)),
        dep("is-positive", "npm", NPM_GIT, git_dependency_purl("is-positive", NPM_GIT),
            canon("generic", "is-positive", vcs_url=NPM_GIT)),
        dep("local-lib", "npm", "file:../local-lib", file_purl("local-lib", "../local-lib"),
            canon("generic", "local-lib", file="../local-lib")),
        dep("semver", "npm", semver, forge_purl(semver),
            canon("github", "semver", "v7.5.4", namespace="example")),
    ]  # fmt: skip
    purls = (vcs_purl("@example/ui", REPO_A, REF_A, "web/ui"),
             canon("github", "web-app", REF_A, namespace="example", subpath="web/ui"))  # fmt: skip
    return pkg("@example/ui", "npm", "2.1.0", purls, deps, path="web/ui")


def yarn_package() -> dict:
    deps = [npm("chai", "4.2.0", "yarn"), npm("lodash", "4.17.21", "yarn"),
            npm("jest", "29.7.0", "yarn", dev=True)]  # fmt: skip
    purls = (vcs_purl("yarn-app", "https://github.com/example/yarn-app", REF_A),
             canon("github", "yarn-app", REF_A, namespace="example"))  # fmt: skip
    return pkg("yarn-app", "yarn", "0.3.0", purls, deps)


def go_packages() -> list[dict]:
    """Two modules of REPO_C (one at tools/), three Go packages and a git submodule."""
    replaced = {"name": "example.com/lib", "type": "gomod", "version": "v0.1.0"}
    util = f"{GO_SVC}/internal/util"
    root_modules = [
        golang("github.com/pkg/errors", "v0.8.1", "gomod", sha256=H1),
        golang("golang.org/x/text", "v0.14.0", "gomod"),
        golang("example.com/lib", "./staging/lib", "gomod", replaces=replaced),
    ]
    svc = [golang("errors", None, "go-package"), golang("io/fs", None, "go-package"),
           golang("github.com/pkg/errors", "v0.8.1", "go-package"),
           golang(util, "v1.2.0", "go-package"),
           golang("example.com/lib", "./staging/lib", "go-package")]  # fmt: skip
    cmd = [golang("fmt", None, "go-package"), golang(util, "v1.2.0", "go-package")]
    tools = [golang("golang.org/x/text/language", "v0.14.0", "go-package")]

    def top(name: str, version: str, kind: str, deps: list, **extra: Any) -> dict:
        namespace, _, short = name.rpartition("/")
        purls = (golang_purl(name, version), canon("golang", short, version, namespace=namespace))
        return pkg(name, kind, version, purls, deps, **extra)

    sub_url, sub_name = "https://github.com/Example/Proto-Defs.git", "third_party/proto"
    sub_purls = (
        vcs_purl(sub_name, sub_url, SUB),
        canon("github", "proto-defs", SUB, namespace="example"),
    )
    return [
        top(GO_SVC, "v1.2.0", "gomod", root_modules),
        top(TOOLS, V_TOOLS, "gomod", [golang("golang.org/x/text", "v0.14.0", "gomod")],
            path="tools"),
        top(GO_SVC, "v1.2.0", "go-package", svc, module=GO_SVC),
        top(f"{GO_SVC}/cmd/svc", "v1.2.0", "go-package", cmd, module=GO_SVC),
        top(TOOLS, V_TOOLS, "go-package", tools, module=TOOLS, path="tools"),
        pkg(sub_name, "git-submodule", f"{sub_url}#{SUB}", sub_purls, [], path=sub_name),
    ]  # fmt: skip


def purls(*values: str) -> list[dict[str, str]]:
    return [{"purl": value} for value in values]


ICM_METADATA = {
    "icm_version": 1,
    "icm_spec": "https://raw.githubusercontent.com/containerbuildsystem/atomic-reactor/"
    "f4abcfdaf8247a6b074f94fa84f3846f82d781c6/atomic_reactor/schemas/content_manifest.json",
    "image_layer_index": -1,
}
GITHUB_A = f"pkg:github/example/web-app@{REF_A}"
PIP_SOURCES = purls(
    "pkg:generic/cnr-server?download_url=https%3A%2F%2Fgithub.com%2Fquay%2Fappr%2Farchive"
    f"%2F58c88e49.tar.gz%23egg%3Dcnr_server%26cachito_hash%3Dsha256%3A{H3}&checksum=sha256:{H3}",
    f"pkg:github/quay/appr@{APPR}",
    "pkg:pypi/aiowsgi@0.7",
    "pkg:pypi/flask-login@0.5.0",
    "pkg:pypi/setuptools@69.0.3",
)
NPM_SOURCES = purls(
    "pkg:generic/is-positive?vcs_url=git%2Bhttps%3A%2F%2Fgithub.com%2Fkevva%2Fis-positive.git"
    f"%23{POSITIVE}",
    "pkg:generic/left-pad?download_url=https%3A%2F%2Fregistry.example.com%2Fleft-pad%2F-%2F"
    "left-pad-1.3.0.tgz",
    "pkg:generic/local-lib?file=..%2Flocal-lib",
    "pkg:github/example/semver@v7.5.4",
    "pkg:npm/%40types/node@20.11.5",
    "pkg:npm/chai@4.2.0",
    "pkg:npm/deep-eql@3.0.1",
)


def icm(*entries: dict) -> dict:
    return {"metadata": ICM_METADATA, "image_contents": list(entries)}
