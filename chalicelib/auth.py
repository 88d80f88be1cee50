"""Bearer JWT verification (PyJWT); tenant and role come from the token's claims. The key is
the configured PEM or secret, or the token's key from the identity provider's JWKS (e.g. a
Cognito user pool's ``.well-known/jwks.json``), fetched and cached by PyJWKClient."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

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
    if not settings.jwt_key and not settings.jwt_jwks_url:
        raise Unauthenticated("this deployment has no token verification key configured")
    try:
        claims = jwt.decode(
            token.strip(),
            _key(token.strip(), settings),
            algorithms=list(settings.jwt_algorithms),
            audience=settings.jwt_audience or None,
            issuer=settings.jwt_issuer,
            # no audience configured: an identity provider whose access tokens carry none
            # (Cognito's client credentials) and whose issuer is Kiln's alone
            options={
                "require": ["exp", "sub", "tenant", "role"],
                "verify_aud": bool(settings.jwt_audience),
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from exc
    role = str(claims["role"])
    if role not in ROLES:
        raise Forbidden(f"unknown role '{role}' in token")
    return Principal(subject=str(claims["sub"]), tenant=str(claims["tenant"]), role=role)


def _key(token: str, settings: Settings) -> Any:
    if not settings.jwt_jwks_url:
        return settings.jwt_key
    return _jwks(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key


@functools.lru_cache(maxsize=4)
def _jwks(url: str) -> jwt.PyJWKClient:
    """The provider's keys, cached (and fetched again for a key id not seen yet)."""
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=3600, timeout=10)
