"""SBOMs of Cachito requests, from the package data a build host uploads (packages.json).

``cachito_sbom`` is the document ``GET /sbom?requests=`` serves, exactly as upstream Cachito
builds it (cachito-behaviour.md §10): CycloneDX 1.4 with only a sorted, de-duplicated
component list in Cachito's purl forms. ``cyclonedx_16`` is Kiln's extension (§13): a full
CycloneDX 1.6 document built with cyclonedx-python-lib, with canonical purls
(packageurl-python), bom-refs, hashes, metadata and the dependency graph."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from cyclonedx.contrib.this.builders import this_component
from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentScope, ComponentType
from cyclonedx.model.dependency import Dependency
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

#: the property marking a component that only development or build steps need
DEV_PROPERTY = "kiln:cachito:dev"
#: CycloneDX's own taxonomy name for the same, for npm and yarn components
NPM_DEV_PROPERTY = "cdx:npm:package:development"
#: dependency types whose purls name the same artifacts (a yarn dependency is an npm package)
_ECOSYSTEMS = {"yarn": "npm"}
_HOST_PURL_TYPES = {"github.com": "github", "bitbucket.org": "bitbucket"}


def cachito_sbom(package_lists: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Cachito's CycloneDX 1.4 SBOM of the requests whose package records are given: every
    package (Go modules included) and every dependency as ``{"type": "library", "name",
    "version" (left out when null), "purl" (Cachito's form)}``, sorted by (purl, name,
    version) with exact duplicates dropped; no metadata, serial number, bom-refs or graph.
    Keys are sorted by the caller's ``json.dumps(sort_keys=True)``."""
    components = [
        _cachito_component(record)
        for packages in package_lists
        for package in packages
        for record in (package, *package.get("dependencies", []))
    ]
    components.sort(key=_cachito_sort_key)
    unique = [c for i, c in enumerate(components) if i == 0 or c != components[i - 1]]
    return {"bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1, "components": unique}


def _cachito_component(record: dict[str, Any]) -> dict[str, str]:
    component = {"type": "library", "name": record["name"], "purl": record["purl"]}
    if record.get("version") is not None:
        component["version"] = record["version"]
    return component


def _cachito_sort_key(component: dict[str, str]) -> tuple[str, str, bool, str]:
    # Cachito sorts by (purl, name, version); a missing version goes first
    version = component.get("version")
    return component["purl"], component["name"], version is not None, version or ""


@dataclasses.dataclass(frozen=True)
class SbomRequest:
    """A complete request as the CycloneDX 1.6 document describes it."""

    request_id: int
    repo: str
    ref: str
    packages: list[dict[str, Any]]


def cyclonedx_16(
    requests: list[SbomRequest],
    *,
    timestamp: datetime | None = None,
    serial_number: UUID | None = None,
) -> dict[str, Any]:
    """A CycloneDX 1.6 document (as a dict) of the given requests, built and serialized by
    cyclonedx-python-lib: Kiln as the tool; the request (several: a component holding them) as
    the subject; each request's packages and their dependencies as components with canonical
    purls, SHA-256 hashes of the bundled files and dev-only dependencies marked (scope
    ``optional`` and the property ``kiln:cachito:dev``); and the graph request -> packages ->
    direct dependencies -> what the lockfile says each requires. ``timestamp`` and
    ``serial_number`` default to now and a random UUID."""
    dependencies = _DependencyComponents(requests)
    graph: dict[str, list[Component]] = dependencies.graph()
    nodes: dict[str, Component] = {c.bom_ref.value or "": c for c in dependencies.components()}
    request_components, packages = [], []
    for request in requests:
        request_component = _request_component(request)
        request_components.append(request_component)
        nodes[_ref(request_component)] = request_component
        graph[_ref(request_component)] = []
        for package in request.packages:
            package_component = _package_component(request, package)
            packages.append(package_component)
            nodes[_ref(package_component)] = package_component
            graph[_ref(request_component)].append(package_component)
            graph[_ref(package_component)] = [
                dependencies.component(record) for record in package.get("dependencies", [])
            ]
    subject = _subject(requests, request_components)
    graph.setdefault(_ref(subject), request_components)  # a single request is in it already
    nodes[_ref(subject)] = subject

    bom = Bom(
        components=[*packages, *dependencies.components()],
        metadata=BomMetaData(
            timestamp=timestamp,
            tools=ToolRepository(components=[_kiln_component(), this_component()]),
            component=subject,
        ),
        serial_number=serial_number,
        dependencies=[
            Dependency(
                ref=nodes[ref].bom_ref, dependencies=[Dependency(ref=d.bom_ref) for d in needs]
            )
            for ref, needs in graph.items()
        ],
    )
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    return document


def _ref(component: Component) -> str:
    return component.bom_ref.value or ""


def _kiln_component() -> Component:
    return Component(
        type=ComponentType.APPLICATION,
        name="kiln",
        description="Kiln's Cachito face: source and dependency bundles of git repositories",
    )


def _subject(requests: list[SbomRequest], request_components: list[Component]) -> Component:
    """The request the document describes, or a component holding several."""
    if len(request_components) == 1:
        return request_components[0]
    ids = ",".join(str(request.request_id) for request in requests)
    return Component(
        type=ComponentType.APPLICATION,
        name="cachito-requests",
        bom_ref=f"cachito-requests:{ids}" if ids else "cachito-requests",
        components=request_components,
        properties=[Property(name="kiln:cachito:request_ids", value=ids)] if ids else [],
    )


def _request_component(request: SbomRequest) -> Component:
    return Component(
        type=ComponentType.APPLICATION,
        name=_repository_name(request.repo),
        version=request.ref,
        bom_ref=f"cachito-request-{request.request_id}",
        purl=repository_purl(request.repo, request.ref),
        external_references=[
            ExternalReference(type=ExternalReferenceType.VCS, url=XsUri(request.repo))
        ],
        properties=[Property(name="kiln:cachito:request_id", value=str(request.request_id))],
    )


def _package_component(request: SbomRequest, package: dict[str, Any]) -> Component:
    path = package.get("path")
    bom_ref = f"cachito-request-{request.request_id}:{package['type']}:{package['name']}"
    properties = [Property(name="kiln:cachito:package_type", value=package["type"])]
    if path:
        bom_ref += f":{path}"
        properties.append(Property(name="kiln:cachito:path", value=path))
    return Component(
        type=ComponentType.LIBRARY,
        name=package["name"],
        version=package.get("version") or None,
        bom_ref=bom_ref,
        purl=_parsed_purl(package.get("canonical_purl")),
        properties=properties,
    )


class _DependencyComponents:
    """One component per dependency (ecosystem, canonical purl) across all the requests, the
    ecosystem being the type with yarn counted as npm: dev-only when every occurrence is dev,
    its ``requires`` united. The bom-ref is the canonical purl, or ``<ecosystem>:<purl>`` where
    several ecosystems share a purl (a Go module and its root package: gomod, go-package)."""

    def __init__(self, requests: list[SbomRequest]) -> None:
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        self._dev: dict[tuple[str, str], bool] = {}
        self._requires: dict[tuple[str, str], set[str]] = {}
        for request in requests:
            for package in request.packages:
                for record in package.get("dependencies", []):
                    key = _dependency_key(record)
                    self._records.setdefault(key, record)
                    self._dev[key] = self._dev.get(key, True) and bool(record.get("dev"))
                    self._requires.setdefault(key, set()).update(record.get("requires") or [])
        purl_types: dict[str, int] = {}
        for _, purl in self._records:
            purl_types[purl] = purl_types.get(purl, 0) + 1
        self._components = {
            key: self._build(key, shared=purl_types[key[1]] > 1) for key in self._records
        }

    def component(self, record: dict[str, Any]) -> Component:
        return self._components[_dependency_key(record)]

    def components(self) -> Iterable[Component]:
        return self._components.values()

    def graph(self) -> dict[str, list[Component]]:
        """Each dependency's bom-ref -> the dependencies its record ``requires``: of its own
        ecosystem, else of any with that purl; a purl no dependency has is left out."""
        by_purl: dict[str, tuple[str, str]] = {}
        for key in sorted(self._components, reverse=True):
            by_purl[key[1]] = key
        graph = {}
        for key, component in self._components.items():
            needs = []
            for purl in sorted(self._requires[key]):
                target = (key[0], purl) if (key[0], purl) in self._components else by_purl.get(purl)
                if target is not None and target != key:
                    needs.append(self._components[target])
            graph[_ref(component)] = needs
        return graph

    def _build(self, key: tuple[str, str], *, shared: bool) -> Component:
        record = self._records[key]
        kind, purl = key
        properties = []
        scope = None
        if "dev" in record:
            scope = ComponentScope.OPTIONAL if self._dev[key] else ComponentScope.REQUIRED
        if self._dev[key]:
            properties.append(Property(name=DEV_PROPERTY, value="true"))
            if kind == "npm":
                properties.append(Property(name=NPM_DEV_PROPERTY, value="true"))
        if record.get("bundle_path"):
            properties.append(
                Property(name="kiln:cachito:bundle_path", value=record["bundle_path"])
            )
        replaced = record.get("replaces")
        if replaced:
            properties.append(
                Property(
                    name="kiln:cachito:replaces",
                    value=f"{replaced['name']}@{replaced.get('version') or ''}".rstrip("@"),
                )
            )
        sha256 = record.get("sha256")
        return Component(
            type=ComponentType.LIBRARY,
            name=record["name"],
            version=record.get("version") or None,
            bom_ref=f"{kind}:{purl}" if shared else purl,
            scope=scope,
            purl=_parsed_purl(record.get("canonical_purl")),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256)] if sha256 else [],
            properties=properties,
        )


def _dependency_key(record: dict[str, Any]) -> tuple[str, str]:
    identity = record.get("canonical_purl") or f"{record['name']}@{record.get('version') or ''}"
    return _ECOSYSTEMS.get(record["type"], record["type"]), identity


def _parsed_purl(purl: str | None) -> PackageURL | None:
    return PackageURL.from_string(purl) if purl else None


def _repository_name(repo: str) -> str:
    path = urllib.parse.urlparse(repo).path or repo
    name = path.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return name.removesuffix(".git") or repo


def repository_purl(repo: str, ref: str) -> PackageURL:
    """The canonical purl of a repository at a commit: ``pkg:github/<ns>/<name>@<ref>`` (and
    ``pkg:bitbucket``) on those hosts, else
    ``pkg:generic/<name>@<ref>?vcs_url=git+<repo>@<ref>``."""
    parsed = urllib.parse.urlparse(repo)
    kind = _HOST_PURL_TYPES.get(parsed.hostname or "")
    path = parsed.path.strip("/").removesuffix(".git")
    if kind and "/" in path:
        namespace, name = path.rsplit("/", 1)
        return PackageURL(type=kind, namespace=namespace.lower(), name=name.lower(), version=ref)
    vcs_url = repo if repo.startswith("git+") else f"git+{repo}"
    return PackageURL(
        type="generic",
        name=_repository_name(repo),
        version=ref,
        qualifiers={"vcs_url": f"{vcs_url}@{ref}"},
    )
