"""OMPS's per-organization options (omps-behaviour.md §8), read from ``omps_organizations``
(KILN_OMPS_ORGANIZATIONS, JSON), plus Kiln's ``tenants``: who may publish to the organization.

Any organization name is accepted; one that is not configured gets the defaults (private, no
replacement, no suffix, no annotations, and the tenant that pushes to it first claims it)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from chalicelib.config import json_object

ORG_NAME = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}$")


class BadOrganizations(ValueError):
    """The configuration itself is wrong (a deployment error, reported at startup)."""


@dataclasses.dataclass(frozen=True)
class RegistryReplacement:
    old: str
    new: str
    regexp: bool = False


@dataclasses.dataclass(frozen=True)
class CsvAnnotation:
    name: str
    value: str  # "{package_name}" expands to the (suffixed) package name


@dataclasses.dataclass(frozen=True)
class Organization:
    name: str
    public: bool = False
    replace_registry: tuple[RegistryReplacement, ...] = ()
    package_name_suffix: str = ""
    csv_annotations: tuple[CsvAnnotation, ...] = ()
    #: tenants that may publish; empty: the tenant that claimed the namespace first
    tenants: tuple[str, ...] = ()


def parse(text: str) -> dict[str, Organization]:
    """The configured organizations; BadOrganizations says what is wrong."""
    raw = json_object(text, "KILN_OMPS_ORGANIZATIONS", BadOrganizations)
    return {name: _organization(name, options) for name, options in raw.items()}


def organization(text: str, name: str) -> Organization:
    """The options of ``name``: its configuration, or the defaults."""
    return parse(text).get(name) or Organization(name)


def _organization(name: str, options: Any) -> Organization:
    if not ORG_NAME.match(name):
        raise BadOrganizations(f"organization name {name!r} must match {ORG_NAME.pattern}")
    if not isinstance(options, dict):
        raise BadOrganizations(f"organization {name!r}: options must be an object")
    unknown = set(options) - {
        "public",
        "oauth_token",
        "replace_registry",
        "package_name_suffix",
        "csv_annotations",
        "tenants",
    }
    if unknown:
        raise BadOrganizations(f"organization {name!r}: unknown options {sorted(unknown)}")
    try:
        return Organization(
            name=name,
            public=_bool(options.get("public", False)),
            replace_registry=tuple(_rule(rule) for rule in options.get("replace_registry") or ()),
            package_name_suffix=str(options.get("package_name_suffix") or ""),
            csv_annotations=tuple(
                CsvAnnotation(str(item["name"]), str(item["value"]))
                for item in options.get("csv_annotations") or ()
            ),
            tenants=tuple(str(tenant) for tenant in options.get("tenants") or ()),
        )
    except (KeyError, TypeError) as exc:
        raise BadOrganizations(f"organization {name!r}: malformed option ({exc})") from exc


def _rule(rule: Any) -> RegistryReplacement:
    replacement = RegistryReplacement(
        str(rule["old"]), str(rule["new"]), _bool(rule.get("regexp", False))
    )
    if replacement.regexp:
        try:
            re.compile(replacement.old, re.MULTILINE)
        except re.error as exc:
            raise TypeError(f"replace_registry regexp {replacement.old!r}: {exc}") from exc
    return replacement


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not true or false")
    return value


def check_settings(organizations_json: str, robots_json: str) -> None:
    """Raise BadOrganizations (a ValueError) for a configuration the face could not use, so a
    deployment refuses to start instead of answering every push with a 500."""
    parse(organizations_json)
    try:
        robots = json.loads(robots_json) if robots_json.strip() else {}
    except ValueError as exc:
        raise BadOrganizations(f"KILN_OMPS_ROBOTS is not JSON: {exc}") from exc
    if not isinstance(robots, dict) or not all(
        isinstance(robot, dict) and isinstance(robot.get("password"), str) and robot.get("tenant")
        for robot in robots.values()
    ):
        raise BadOrganizations(
            'KILN_OMPS_ROBOTS must map each robot to {"password": "...", "tenant": "..."}'
        )
