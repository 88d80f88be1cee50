"""What an operator sets for a deployment: CDK context (``-c key=value`` or cdk.json's
"context"), each with a default, validated before a construct is made (docs/deploy.md)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.config import ARCHES

CHALICE_CONFIG = Path(__file__).resolve().parents[2] / ".chalice" / "config.json"

FACES = ("ims", "composer", "glance", "cachito", "omps")
HOST_MODES = ("ec2", "batch")
#: the synth default: a placeholder the operator replaces (docs/deploy.md, "Parameters")
PLACEHOLDER_JWKS_URL = "https://idp.example.invalid/.well-known/jwks.json"
DEFAULT_INSTANCE_TYPES = {
    "x86_64": ("c7i.2xlarge", "m7i.2xlarge"),
    "aarch64": ("c7g.2xlarge", "m7g.2xlarge"),
}
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")
_SETTING_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CERT = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
#: the retention periods CloudWatch Logs accepts
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)


class SettingsError(ValueError):
    """A context value is missing or wrong; the message names the context key."""


@dataclasses.dataclass(frozen=True)
class ArchSettings:
    arch: str
    instance_types: tuple[str, ...]
    min_hosts: int
    max_hosts: int
    host_mode: str  # "ec2": an Auto Scaling group of build hosts; "batch": AWS Batch jobs


@dataclasses.dataclass(frozen=True)
class DeploySettings:
    region: str = "us-east-1"
    availability_zones: tuple[str, ...] = ("us-east-1a", "us-east-1b")
    stage: str = "dev"
    table_prefix: str = "kiln"
    bucket_name: str | None = None  # None: CloudFormation names the artifact bucket
    bucket_versioning: bool = False
    jwt_issuer: str = "kiln"
    jwt_audience: str = "kiln"
    jwt_algorithms: str = "RS256"
    jwt_jwks_url: str = PLACEHOLDER_JWKS_URL
    jwt_public_key: str = ""  # PEM; used when there is no JWKS URL
    domain_name: str | None = None  # API at api.<domain_name>, data plane at data.<domain_name>
    certificate_arn: str | None = None  # ACM, in the region, covering both names
    arches: tuple[ArchSettings, ...] = ()
    batch_max_vcpus: int = 64
    faces: tuple[str, ...] = FACES
    nat_gateways: int = 1
    public_subnets_only: bool = False
    node_auto_register: bool = True  # KILN_NODE_AUTO_REGISTER: the fleets' hosts enrol themselves
    deletion_protection: bool = True
    log_retention_days: int = 30
    alarm_email: str | None = None

    @property
    def log_retention(self) -> Any:
        """log_retention_days as aws_logs.RetentionDays (its members in the same order)."""
        from aws_cdk import aws_logs

        return list(aws_logs.RetentionDays)[LOG_RETENTION_DAYS.index(self.log_retention_days)]

    def arch(self, name: str) -> ArchSettings:
        return next(a for a in self.arches if a.arch == name)

    @property
    def api_domain(self) -> str | None:
        return f"api.{self.domain_name}" if self.domain_name else None

    @property
    def data_domain(self) -> str | None:
        return f"data.{self.domain_name}" if self.domain_name else None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> DeploySettings:
        """``context``: the app's whole context (``node.get_all_context()``). The CDK's own keys
        (feature flags "@aws-cdk/...", "aws:cdk:...", cached lookups "x:account=...",
        "acknowledged-issue-numbers") are never snake_case; a snake_case key that is not a
        setting is a typo, reported rather than deployed with a default."""
        ours = {key: value for key, value in context.items() if _SETTING_KEY.match(key)}
        return cls.from_mapping(ours)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DeploySettings:
        read = _Reader({k: v for k, v in values.items() if v is not None})
        region = read.text("region", cls.region, _REGION)
        zones = read.items("availability_zones", (f"{region}a", f"{region}b"))
        public_key = read.text("jwt_public_key", "", allow_empty=True).replace("\\n", "\n")
        default_jwks = "" if public_key else PLACEHOLDER_JWKS_URL  # synth works unconfigured
        public_only = read.flag("public_subnets_only", cls.public_subnets_only)
        arches = tuple(
            ArchSettings(
                arch=arch,
                instance_types=read.items(f"{arch}_instance_types", DEFAULT_INSTANCE_TYPES[arch]),
                min_hosts=read.number(f"{arch}_min_hosts", 0, 0, 100),
                max_hosts=read.number(f"{arch}_max_hosts", 4, 0, 100),
                host_mode=read.choice(f"{arch}_host_mode", "ec2", HOST_MODES),
            )
            for arch in ARCHES
        )
        settings = cls(
            region=region,
            availability_zones=zones,
            stage=read.text("stage", cls.stage, _NAME),
            table_prefix=read.text("table_prefix", cls.table_prefix, _NAME),
            bucket_name=read.optional("bucket_name", _BUCKET),
            bucket_versioning=read.flag("bucket_versioning", cls.bucket_versioning),
            jwt_issuer=read.text("jwt_issuer", cls.jwt_issuer),
            jwt_audience=read.text("jwt_audience", cls.jwt_audience, allow_empty=True),
            jwt_algorithms=read.text("jwt_algorithms", cls.jwt_algorithms),
            jwt_jwks_url=read.text("jwt_jwks_url", default_jwks, allow_empty=True),
            jwt_public_key=public_key,
            domain_name=read.optional("domain_name", _DOMAIN),
            certificate_arn=read.optional("certificate_arn", _CERT),
            arches=arches,
            batch_max_vcpus=read.number("batch_max_vcpus", cls.batch_max_vcpus, 1, 10000),
            faces=read.subset("faces", FACES),
            nat_gateways=read.number("nat_gateways", 0 if public_only else 1, 0, len(zones)),
            public_subnets_only=public_only,
            node_auto_register=read.flag("node_auto_register", cls.node_auto_register),
            deletion_protection=read.flag("deletion_protection", cls.deletion_protection),
            log_retention_days=read.choice(
                "log_retention_days", cls.log_retention_days, LOG_RETENTION_DAYS
            ),
            alarm_email=read.optional("alarm_email", _EMAIL),
        )
        read.finish()
        return settings.checked()

    def checked(self) -> DeploySettings:
        """Rules across keys; the first broken one raises SettingsError."""
        problems = []
        if len(self.availability_zones) < 2:
            problems.append("availability_zones: at least two (an ALB needs two)")
        for zone in self.availability_zones:
            if not zone.startswith(self.region):
                problems.append(f"availability_zones: {zone} is not in region {self.region}")
        if not (self.jwt_jwks_url or self.jwt_public_key):
            problems.append("jwt_jwks_url or jwt_public_key: one of them is required")
        if self.jwt_jwks_url and not self.jwt_jwks_url.startswith("https://"):
            problems.append("jwt_jwks_url: must be an https:// URL")
        if self.jwt_public_key and "BEGIN PUBLIC KEY" not in self.jwt_public_key:
            problems.append("jwt_public_key: must be a PEM public key (BEGIN PUBLIC KEY)")
        if bool(self.domain_name) != bool(self.certificate_arn):
            problems.append("domain_name and certificate_arn: give both or neither")
        if self.certificate_arn and f":acm:{self.region}:" not in self.certificate_arn:
            problems.append(f"certificate_arn: must be an ACM certificate in {self.region}")
        for arch in self.arches:
            if arch.min_hosts > arch.max_hosts:
                problems.append(f"{arch.arch}_min_hosts: more than {arch.arch}_max_hosts")
            for instance_type in arch.instance_types:
                if not _INSTANCE_TYPE.match(instance_type):
                    problems.append(f"{arch.arch}_instance_types: {instance_type!r}?")
        if self.public_subnets_only:  # build_hosts.py, batch.py, data_plane.py: private ones
            problems.append(
                "public_subnets_only: not supported yet: the build hosts, AWS Batch and the data "
                "plane run in the VPC's private subnets"
            )
        if self.public_subnets_only and self.nat_gateways:
            problems.append("nat_gateways: must be 0 with public_subnets_only")
        if not self.public_subnets_only and not self.nat_gateways:
            problems.append("nat_gateways: at least 1 (or public_subnets_only=true)")
        if not self.faces:
            problems.append("faces: at least one")
        stages = json.loads(CHALICE_CONFIG.read_text(encoding="utf-8")).get("stages", {})
        if self.stage not in stages:  # its per-function timeouts, memory and roles live there
            problems.append(f"stage: {self.stage!r} is not a stage of .chalice/config.json")
        if problems:
            raise SettingsError("invalid deployment settings:\n  " + "\n  ".join(problems))
        return self


def context_keys() -> tuple[str, ...]:
    per_arch = ("instance_types", "min_hosts", "max_hosts", "host_mode")
    plain = tuple(f.name for f in dataclasses.fields(DeploySettings) if f.name != "arches")
    return plain + tuple(f"{arch}_{key}" for arch in ARCHES for key in per_arch)


class _Reader:
    """Context values: strings from ``-c key=value``, JSON types from cdk.json."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values
        self._seen: set[str] = set()

    def _get(self, key: str) -> Any:
        self._seen.add(key)
        return self._values.get(key)

    def finish(self) -> None:
        unknown = set(self._values) - self._seen
        if unknown:  # a typo in a context key must not silently deploy the default
            raise SettingsError(f"unknown deployment settings: {', '.join(sorted(unknown))}")

    def text(self, key: str, default: str, pattern: Any = None, allow_empty: bool = False) -> str:
        value = self._get(key)
        value = default if value is None else str(value).strip()
        if not value and not allow_empty:
            raise SettingsError(f"{key}: must not be empty")
        if value and pattern is not None and not pattern.match(value):
            raise SettingsError(f"{key}: {value!r} is not valid")
        return value

    def optional(self, key: str, pattern: Any) -> str | None:
        return self.text(key, "", pattern, allow_empty=True) or None

    def items(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return tuple(default)
        if isinstance(value, str):
            value = json.loads(value) if value.startswith("[") else value.split(",")
        found = tuple(str(item).strip() for item in value if str(item).strip())
        if not found:
            raise SettingsError(f"{key}: a comma-separated list, not empty")
        return found

    def subset(self, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        found = self.items(key, allowed)
        wrong = [item for item in found if item not in allowed]
        if wrong:
            raise SettingsError(f"{key}: {', '.join(wrong)} not in {', '.join(allowed)}")
        return tuple(item for item in allowed if item in found)

    def number(self, key: str, default: int, least: int, most: int) -> int:
        value = self._get(key)
        try:
            number = default if value is None else int(str(value))
        except ValueError:
            raise SettingsError(f"{key}: {value!r} is not a whole number") from None
        if not least <= number <= most:
            raise SettingsError(f"{key}: {number} is not between {least} and {most}")
        return number

    def choice(self, key: str, default: Any, allowed: tuple[Any, ...]) -> Any:
        value = self._get(key)
        if value is None:
            return default
        kind = type(allowed[0])
        try:
            value = kind(value)
        except ValueError:
            value = None
        if value not in allowed:
            raise SettingsError(f"{key}: one of {', '.join(map(str, allowed))}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise SettingsError(f"{key}: true or false, not {value!r}")
        return text in ("true", "1", "yes")
