"""Bearer JWT verification (PyJWT); tenant and role come from the token's claims."""

from __future__ import annotations

import dataclasses

import jwt

from chalicelib.config import Settings
from chalicelib.errors import Forbidden, Unauthenticated

ROLES = ("admin", "user", "worker")


@dataclasses.dataclass(frozen=True)
class Principal:
    subject: str
    tenant: str
    role: str

    @property
    def sees_all_tenants(self) -> bool:
        """Admins and workers see every tenant's records; a user only its own."""
        return self.role in ("admin", "worker")

    def can_see(self, owner_tenant: str) -> bool:
        return self.sees_all_tenants or owner_tenant == self.tenant

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"role '{self.role}' may not do this; it needs {' or '.join(roles)}")


def verify_bearer(header: str | None, settings: Settings) -> Principal:
    if not header:
        raise Unauthenticated("an Authorization: Bearer <token> header is required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    if not settings.jwt_key:
        raise Unauthenticated("this deployment has no token verification key configured")
    try:
        claims = jwt.decode(
            token.strip(),
            settings.jwt_key,
            algorithms=list(settings.jwt_algorithms),
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "tenant", "role"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from exc
    role = str(claims["role"])
    if role not in ROLES:
        raise Forbidden(f"unknown role '{role}' in token")
    return Principal(subject=str(claims["sub"]), tenant=str(claims["tenant"]), role=role)
