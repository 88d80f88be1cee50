"""Settings, read from the environment when first asked for (never at import time)."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

# Names the deployment gives its queues. Chalice's on_sqs_message needs them at import time, so
# they are constants here; infra/resources.py reads the same constants.
BUILD_EVENTS_QUEUE = "kiln-build-events"
UPLOAD_EVENTS_QUEUE = "kiln-upload-events"
GLANCE_IMPORTS_QUEUE = "kiln-glance-imports"
ARCHES = ("x86_64", "aarch64")


#: The API faces one deployment can serve; ``KILN_FACES`` (comma-separated) picks some.
FACES = ("ims", "composer", "glance", "cachito", "omps")


def enabled_faces(value: str | None = None) -> frozenset[str]:
    """The faces ``KILN_FACES`` names (all when unset or empty). Read when app.py is imported,
    which is also when `chalice package` lists the routes a deployment gets."""
    text = os.environ.get("KILN_FACES", "") if value is None else value
    named = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = sorted(set(named) - set(FACES))
    if unknown:
        raise ValueError(f"KILN_FACES names {', '.join(unknown)}: the faces are {', '.join(FACES)}")
    return frozenset(named or FACES)


def build_queue_name(arch: str) -> str:
    return f"kiln-builds-{arch}"


def queue_names() -> tuple[str, ...]:
    """Every queue infra/resources.py defines (a test keeps the two lists equal)."""
    builds = tuple(build_queue_name(arch) for arch in ARCHES)
    return (*builds, BUILD_EVENTS_QUEUE, UPLOAD_EVENTS_QUEUE, GLANCE_IMPORTS_QUEUE)


def dead_letter_queue_name(queue: str) -> str:
    """Where SQS moves a queue's message after too many receives without a delete."""
    return f"{queue}-dlq"


#: The largest body a Lambda behind API Gateway may answer inline: Lambda's synchronous response
#: is at most 6 MB, and API Gateway hands it binary bodies base64-encoded (a third larger), so
#: 4 MiB (5.6 MB encoded) leaves room for the headers. Larger downloads redirect to S3.
INLINE_BODY_MAX = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Settings:
    region: str
    table_prefix: str
    artifact_bucket: str
    state_machine_arn: str
    jwt_key: str  # PEM public key (RS256) or shared secret (HS256)
    jwt_algorithms: tuple[str, ...]
    jwt_issuer: str
    jwt_audience: str  # "": tokens' audience is not checked
    presign_seconds: int
    recipe_max_bytes: int
    recipe_max_members: int
    node_fresh_seconds: int
    job_stale_seconds: int
    ims_version: str
    unserved_wait_seconds: int = 600
    user_wait_seconds: int = 3600
    deleted_retention_seconds: int = 30 * 86400
    orphan_grace_seconds: int = 3600
    interrupted_grace_seconds: int = 60
    glance_property_quota: int = 128
    glance_tag_quota: int = 128
    glance_member_quota: int = 128
    glance_image_size_cap: int = 1024**4
    glance_import_allow: str = ""  # CIDRs web-download may fetch from despite being private
    glance_inline_data_max: int = INLINE_BODY_MAX  # larger downloads on AWS: a presigned URL
    glance_upload_timeout_seconds: int = 6 * 3600  # then an upload's image is queued again
    glance_import_timeout_seconds: int = 3600  # then an import has failed
    # Cachito face (docs/cachito.md)
    cachito_package_managers: str = "gomod,npm,pip,yarn,git-submodule"  # enabled ones
    cachito_flags: str = (  # the active flags; others are "Invalid/Inactive"
        "cgo-disable,force-gomod-tidy,gomod-vendor,gomod-vendor-check,include-git-dir,"
        "remove-unsafe-symlinks"
    )
    cachito_representatives: str = ""  # subjects that may send "user" (on behalf of others)
    # upstream's LOGIN_DISABLED: a call with no token acts as an anonymous user of this tenant
    # (for clients that cannot send one, e.g. Cachito's own integration tests); "": never
    cachito_anonymous_tenant: str = ""
    cachito_exclusive_pairs: str = "npm:yarn"  # managers that may not share a package path
    cachito_arch: str = "x86_64"  # the build hosts that run Cachito requests
    cachito_idempotency_seconds: int = 600  # the same POST again within it: the same request
    cachito_stale_seconds: int = 86400  # complete and in_progress requests then go stale
    cachito_failed_stale_seconds: int = 7 * 86400  # failed ones
    cachito_pip_index_url: str = "https://pypi.org"
    cachito_npm_registry: str = "https://registry.npmjs.org"
    cachito_goproxy: str = "https://proxy.golang.org,direct"
    cachito_gosumdb: str = "sum.golang.org"
    cachito_allow: str = ""  # CIDRs repository and URL fetches may reach despite being internal
    cachito_max_dependencies: int = 5000
    cachito_max_bytes: int = 4 * 1024**3  # dependency bytes per request
    cachito_max_source_bytes: int = 2 * 1024**3  # a repository's clone
    cachito_cache_max_bytes: int = 50 * 1024**3  # the shared dependency and source cache
    cachito_cache_max_age_seconds: int = 30 * 86400  # since a cached object was last used
    # OMPS face and Kiln's app registry (docs/omps.md)
    omps_organizations: str = ""  # JSON: {org: {public, replace_registry, ..., tenants}}
    omps_robots: str = ""  # JSON: {user: {password, tenant, role}}: "basic" registry tokens
    omps_default_release_version: str = "1.0.0"
    omps_max_content_length: int = 2 * 1024 * 1024  # a push request's body
    omps_max_uncompressed_bytes: int = 20 * 1024 * 1024  # declared, and really extracted
    omps_max_entries: int = 1000  # entries of an uploaded zip
    omps_koji_hub_url: str = ""  # "": koji pushes answer that no hub is configured
    omps_koji_root_url: str = ""
    omps_koji_max_bytes: int = 20 * 1024 * 1024  # an operator-manifests archive download
    omps_request_timeout_seconds: int = 30  # Koji and Greenwave calls
    omps_greenwave_url: str = ""  # ends in "/"; "": koji pushes skip Greenwave
    omps_greenwave_context: str = ""
    omps_greenwave_product_version: str = ""
    omps_version: str = "11.2"  # what /about reports as the service version
    omps_cnr_api_version: str = "0.0.3"  # what /cnr/version reports
    # composer's Koji target: JSON {hub URL: {user, password | cert, serverca,
    # content_generator, timeout}} (chalicelib/adapters/koji_cg.py); "": no hub
    koji_hubs: str = ""
    # the identity provider's JWKS (e.g. a Cognito user pool's): token keys come from there
    jwt_jwks_url: str = ""
    # a node first heard of is registered (an AWS deployment's fleets enrol their instances)
    node_auto_register: bool = False
    # per-build cost: the price of an instance-hour of a build host, per arch (USD)
    price_per_hour_x86_64: float = 0.1785  # c7i.xlarge on demand, us-east-1
    price_per_hour_aarch64: float = 0.145  # c7g.xlarge
    # the content-addressed build cache (docs/build-cache.md); the schedule evicts
    build_cache_max_bytes: int = 200 * 1024**3
    build_cache_max_age_seconds: int = 30 * 86400  # since an entry was last used
    # the KMS key (id, ARN or alias) that signs build provenance (docs/provenance.md); its
    # default is the alias infra/resources.py creates (PROVENANCE_KEY_ALIAS)
    provenance_key_id: str = "alias/kiln-provenance"

    def __post_init__(self) -> None:
        if not 0 <= self.glance_inline_data_max <= INLINE_BODY_MAX:
            raise ValueError(
                f"KILN_GLANCE_INLINE_DATA_MAX is {self.glance_inline_data_max}: at most "
                f"{INLINE_BODY_MAX} bytes (4 MiB) fit a Lambda response once base64-encoded"
            )

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", "us-east-1"),
            table_prefix=env.get("KILN_TABLE_PREFIX", "kiln"),
            artifact_bucket=env.get("KILN_ARTIFACT_BUCKET", "kiln-artifacts"),
            state_machine_arn=env.get("KILN_STATE_MACHINE_ARN", ""),
            jwt_key=_jwt_key(env),
            jwt_algorithms=tuple(env.get("KILN_JWT_ALGORITHMS", "RS256").split(",")),
            jwt_issuer=env.get("KILN_JWT_ISSUER", "kiln-local"),
            jwt_audience=env.get("KILN_JWT_AUDIENCE", "kiln"),
            jwt_jwks_url=env.get("KILN_JWT_JWKS_URL", ""),
            presign_seconds=int(env.get("KILN_PRESIGN_SECONDS", "3600")),
            recipe_max_bytes=int(env.get("KILN_RECIPE_MAX_BYTES", str(64 * 1024 * 1024))),
            recipe_max_members=int(env.get("KILN_RECIPE_MAX_MEMBERS", "2000")),
            node_fresh_seconds=int(env.get("KILN_NODE_FRESH_SECONDS", "120")),
            job_stale_seconds=int(env.get("KILN_JOB_STALE_SECONDS", str(5 * 3600))),
            ims_version=env.get("KILN_IMS_VERSION", "3.20.0-kiln"),
            unserved_wait_seconds=int(env.get("KILN_UNSERVED_WAIT_SECONDS", "600")),
            user_wait_seconds=int(env.get("KILN_USER_WAIT_SECONDS", "3600")),
            deleted_retention_seconds=int(
                env.get("KILN_DELETED_RETENTION_SECONDS", str(30 * 86400))
            ),
            orphan_grace_seconds=int(env.get("KILN_ORPHAN_GRACE_SECONDS", "3600")),
            interrupted_grace_seconds=int(env.get("KILN_INTERRUPTED_GRACE_SECONDS", "60")),
            glance_property_quota=int(env.get("KILN_GLANCE_PROPERTY_QUOTA", "128")),
            glance_tag_quota=int(env.get("KILN_GLANCE_TAG_QUOTA", "128")),
            glance_member_quota=int(env.get("KILN_GLANCE_MEMBER_QUOTA", "128")),
            glance_image_size_cap=int(env.get("KILN_GLANCE_IMAGE_SIZE_CAP", str(1024**4))),
            glance_import_allow=env.get("KILN_GLANCE_IMPORT_ALLOW", ""),
            glance_upload_timeout_seconds=int(
                env.get("KILN_GLANCE_UPLOAD_TIMEOUT_SECONDS", str(6 * 3600))
            ),
            glance_import_timeout_seconds=int(
                env.get("KILN_GLANCE_IMPORT_TIMEOUT_SECONDS", "3600")
            ),
            glance_inline_data_max=int(
                env.get("KILN_GLANCE_INLINE_DATA_MAX", str(INLINE_BODY_MAX))
            ),
            koji_hubs=env.get("KILN_KOJI_HUBS", ""),
            node_auto_register=env.get("KILN_NODE_AUTO_REGISTER", "") == "1",
            provenance_key_id=env.get("KILN_PROVENANCE_KEY") or "alias/kiln-provenance",
            **_face_settings(env),
        )


def _face_settings(env: os._Environ[str]) -> dict[str, Any]:
    """The Cachito and OMPS settings given in the environment (KILN_CACHITO_<NAME>,
    KILN_OMPS_<NAME>), typed as declared."""
    found: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        if not field.name.startswith(("cachito_", "omps_", "price_", "build_cache_")):
            continue
        value = env.get(f"KILN_{field.name.upper()}")
        if value is not None:
            declared = str(getattr(field.type, "__name__", field.type))
            kind = {"int": int, "float": float}.get(declared)
            found[field.name] = kind(value) if kind else value
    return found


def json_object(text: str, name: str, error: type[ValueError] = ValueError) -> dict[str, Any]:
    """A setting that holds a JSON object (``{}`` when empty); ``error`` names what is wrong."""
    if not text.strip():
        return {}
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise error(f"{name} is not JSON: {exc}") from None
    if not isinstance(found, dict):
        raise error(f"{name} must be a JSON object")
    return found


def _jwt_key(env: os._Environ[str]) -> str:
    if env.get("KILN_JWT_KEY"):
        return env["KILN_JWT_KEY"]
    path = env.get("KILN_JWT_KEY_FILE")
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    return ""


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
