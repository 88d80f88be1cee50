"""Who calls the app registry (and OMPS, which forwards its caller's header verbatim):
``Bearer <Kiln JWT>``, a bare Kiln JWT (what a secret file that holds just the token sends),
or ``basic <base64(user:password)>`` of a robot configured in ``omps_robots`` (what
``POST /cnr/api/v1/users/login`` hands out). No header: anonymous."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hmac
import json

from chalicelib.auth import ROLES, Principal, verify_bearer
from chalicelib.config import Settings
from chalicelib.domain.appregistry.errors import InvalidUsage, UnauthorizedAccess
from chalicelib.errors import DomainError


@dataclasses.dataclass(frozen=True)
class Caller:
    principal: Principal | None  # None: anonymous

    @property
    def anonymous(self) -> bool:
        return self.principal is None

    @property
    def subject(self) -> str:
        return self.principal.subject if self.principal else "anonymous"

    @property
    def tenant(self) -> str:
        return self.principal.tenant if self.principal else ""


ANONYMOUS = Caller(None)


def caller_from(header: str | None, settings: Settings) -> Caller:
    """The caller of a request with this Authorization header; UnauthorizedAccess when the
    header names no one Kiln knows."""
    if header is None or not header.strip():
        return ANONYMOUS
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() == "basic":
        user, password = _basic(rest.strip())
        return Caller(_robot(user, password, settings))
    bearer = header if scheme.lower() == "bearer" else f"Bearer {header.strip()}"
    try:
        return Caller(verify_bearer(bearer, settings))
    except DomainError as exc:
        raise UnauthorizedAccess(f"Invalid credentials: {exc.detail}") from exc


def login(user: str, password: str, settings: Settings) -> str:
    """``POST /cnr/api/v1/users/login``: the robot's registry token."""
    if not user or not password:
        raise InvalidUsage("Missing username or password")
    _robot(user, password, settings)
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"basic {raw}"


def _basic(encoded: str) -> tuple[str, str]:
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise UnauthorizedAccess("Invalid credentials: malformed basic token") from None
    if not sep:
        raise UnauthorizedAccess("Invalid credentials: malformed basic token")
    return user, password


def _robot(user: str, password: str, settings: Settings) -> Principal:
    robot = robots(settings.omps_robots).get(user)
    expected = str(robot.get("password", "")).encode() if robot is not None else b""
    if robot is None or not hmac.compare_digest(expected, password.encode()):
        raise UnauthorizedAccess("Invalid Username or Password")
    role = str(robot.get("role", "user"))
    if role not in ROLES:
        raise UnauthorizedAccess(f"robot {user!r} has unknown role {role!r}")
    return Principal(subject=f"robot:{user}", tenant=str(robot.get("tenant", "")), role=role)


@functools.lru_cache(maxsize=4)
def robots(text: str) -> dict[str, dict[str, object]]:
    if not text.strip():
        return {}
    found = json.loads(text)
    if not isinstance(found, dict):
        raise ValueError("KILN_OMPS_ROBOTS must be a JSON object")
    return found
