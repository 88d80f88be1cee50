"""Content manifests of Cachito requests from realistic package data (tests/cachito/
package_data.py)."""

from __future__ import annotations

import json

from chalicelib.cachito_purl import vcs_purl
from chalicelib.domain.cachito.manifests import content_manifest, request_content_manifest
from tests.cachito.package_data import (
    GITHUB_A,
    NPM_SOURCES,
    PIP_SOURCES,
    REF_A,
    SUB,
    SVC,
    V_TOOLS,
    canon,
    dep,
    go_packages,
    icm,
    npm_package,
    pip_package,
    pkg,
    purls,
    pypi,
    yarn_package,
)


def test_pip_and_npm_entries_list_non_dev_dependencies_and_all_sources() -> None:
    manifest = request_content_manifest([npm_package(), pip_package()])
    assert manifest == icm(
        {"purl": GITHUB_A, "dependencies": PIP_SOURCES[:4], "sources": PIP_SOURCES},
        {
            "purl": f"{GITHUB_A}#web/ui",
            "dependencies": [s for s in NPM_SOURCES if "types" not in s["purl"]],
            "sources": NPM_SOURCES,
        },
    )


def test_go_packages_get_entries_with_their_modules_dependencies_as_sources() -> None:
    root_sources = purls(
        "pkg:golang/github.com%2Fpkg%2Ferrors@v0.8.1",
        f"{SVC}@v1.2.0#staging/lib",
        "pkg:golang/golang.org%2Fx%2Ftext@v0.14.0",
    )
    assert request_content_manifest(go_packages()) == icm(
        {"purl": f"pkg:github/example/proto-defs@{SUB}", "dependencies": [], "sources": []},
        {
            "purl": f"{SVC}%2Fcmd%2Fsvc@v1.2.0",
            "dependencies": purls("pkg:golang/fmt", f"{SVC}%2Finternal%2Futil@v1.2.0"),
            "sources": root_sources,
        },
        {
            "purl": f"{SVC}%2Ftools@{V_TOOLS}",
            "dependencies": purls("pkg:golang/golang.org%2Fx%2Ftext%2Flanguage@v0.14.0"),
            "sources": purls("pkg:golang/golang.org%2Fx%2Ftext@v0.14.0"),
        },
        {
            "purl": f"{SVC}@v1.2.0",
            "dependencies": purls(
                "pkg:golang/errors",
                "pkg:golang/github.com%2Fpkg%2Ferrors@v0.8.1",
                f"{SVC}%2Finternal%2Futil@v1.2.0",
                f"{SVC}@v1.2.0#staging/lib",
                "pkg:golang/io%2Ffs",
            ),
            "sources": root_sources,
        },
    )


def test_a_go_package_without_module_field_takes_the_longest_enclosing_module() -> None:
    packages = go_packages()
    for package in packages:
        package.pop("module", None)
    entries = request_content_manifest(packages)["image_contents"]
    assert [len(entry["sources"]) for entry in entries] == [0, 3, 1, 3]


def test_yarn_and_rubygems_entries() -> None:
    gem = dep("zeitwerk", "rubygems", "2.6.0", "pkg:gem/zeitwerk@2.6.0", "pkg:gem/zeitwerk@2.6.0")
    repo = "https://github.com/example/rails-app"
    purls_ = (
        vcs_purl("rails-app", repo, REF_A),
        canon("github", "rails-app", REF_A, namespace="example"),
    )
    rubygems = pkg("rails-app", "rubygems", "1.0", purls_, [gem])
    assert request_content_manifest([yarn_package(), rubygems])["image_contents"] == [
        {
            "purl": f"pkg:github/example/rails-app@{REF_A}",
            "dependencies": purls(gem["purl"]),
            "sources": purls(gem["purl"]),
        },
        {
            "purl": f"pkg:github/example/yarn-app@{REF_A}",
            "dependencies": purls("pkg:npm/chai@4.2.0", "pkg:npm/lodash@4.17.21"),
            "sources": purls("pkg:npm/chai@4.2.0", "pkg:npm/jest@29.7.0", "pkg:npm/lodash@4.17.21"),
        },
    ]


def test_a_request_without_packages_and_no_requests_give_empty_manifests() -> None:
    assert request_content_manifest([]) == icm()
    assert content_manifest([]) == icm()
    assert content_manifest([[]]) == icm()


def test_two_requests_merge_the_same_entry_and_sort_again() -> None:
    six = pypi("six", "1.16.0")
    again = pip_package([pypi("aiowsgi", "0.7"), six, pypi("setuptools", "69.0.3", dev=True)])
    merged = content_manifest([[pip_package(), yarn_package()], [again, npm_package()]])
    both = sorted(PIP_SOURCES + purls("pkg:pypi/six@1.16.0"), key=lambda item: item["purl"])
    assert [entry["purl"] for entry in merged["image_contents"]] == [
        GITHUB_A,
        f"{GITHUB_A}#web/ui",
        f"pkg:github/example/yarn-app@{REF_A}",
    ]
    assert merged["image_contents"][0] == {
        "purl": GITHUB_A,
        "dependencies": [item for item in both if "setuptools" not in item["purl"]],
        "sources": both,
    }
    alone = request_content_manifest([npm_package()])["image_contents"]
    assert merged["image_contents"][1] == alone[0]
    twice = content_manifest([go_packages(), go_packages()])
    assert twice == request_content_manifest(go_packages())
    assert json.dumps(merged, sort_keys=True).startswith('{"image_contents": [{"dependencies"')
