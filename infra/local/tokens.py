"""The local signing key and the tokens `make up` and `make token` hand out."""

from __future__ import annotations

import functools
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "kiln-local"
AUDIENCE = "kiln"


def ensure_keys(state_dir: Path) -> tuple[Path, Path]:
    """An RS256 key pair in ``state_dir``, made once; returns (private, public) paths."""
    private_path, public_path = state_dir / "jwt-private.pem", state_dir / "jwt-public.pem"
    if not private_path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        private_path.chmod(0o600)
        public_path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return private_path, public_path


@functools.lru_cache(maxsize=8)
def _signing_key(private_pem: bytes) -> Any:
    """The parsed key (parsing a PEM costs more than signing with it)."""
    return serialization.load_pem_private_key(private_pem, password=None)


def mint(
    private_pem: bytes, tenant: str, role: str, ttl_seconds: int = 7 * 24 * 3600, subject: str = ""
) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject or f"{role}@{tenant}",
        "tenant": tenant,
        "role": role,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, _signing_key(private_pem), algorithm="RS256")


def for_stack(private_pem: bytes) -> dict[str, str]:
    """stack.json's ``tokens``: one for each role, of tenant demo."""
    return {role: mint(private_pem, "demo", role) for role in ("admin", "user", "worker")}


def main() -> None:
    import argparse
    import contextlib
    import json

    from infra.local.service_accounts import ServiceAccounts

    parser = argparse.ArgumentParser(description="Print a token signed with the local key.")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--role", default="user", choices=["admin", "user", "worker"])
    # the stack's state dir (KILN_STATE_DIR, as `make up` reads it): its key and accounts
    parser.add_argument("--state-dir", default=os.environ.get("KILN_STATE_DIR", ".kiln"))
    parser.add_argument(
        "--service-account",
        action="store_true",
        help="instead: create an OAuth2 client-credentials service account (for the token "
        "endpoint of `make up`) and print it as JSON; its secret is shown only this once",
    )
    args = parser.parse_args()
    state_dir = Path(args.state_dir)
    private_path, _ = ensure_keys(state_dir)
    if not args.service_account:
        print(mint(private_path.read_bytes(), args.tenant, args.role))
        return
    client_id, secret = ServiceAccounts(state_dir).create(args.tenant, args.role)
    account = {"client_id": client_id, "client_secret": secret}
    account.update(tenant=args.tenant, role=args.role)
    with contextlib.suppress(OSError, ValueError, KeyError):  # the running stack's endpoint
        account["token_url"] = json.loads((state_dir / "stack.json").read_text())["token_url"]
    print(json.dumps(account, indent=2))


if __name__ == "__main__":
    main()
