"""SSH public keys a tenant registers for build and customize shells."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.models import PublicKeyModel
from chalicelib.auth import Principal
from chalicelib.domain.validation import BodyCheck, require_object

KEY_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
KIND = "public-key"
#: an OpenSSH public key line: a 16384-bit RSA key is about 2,800 characters
PUBLIC_KEY_MAX = 16384


def create(principal: Principal, body: Any) -> PublicKeyModel:
    check = BodyCheck(
        require_object(body), known=("name", "public_key"), read_only=("id", "created")
    )
    name = check.string("name", required=True, min_len=1)
    public_key = check.string("public_key", required=True, min_len=1, max_len=PUBLIC_KEY_MAX)
    if public_key and public_key.split(" ", 1)[0] not in KEY_TYPES:
        check.fail("public_key", "Not an OpenSSH public key (expected e.g. 'ssh-ed25519 AAAA...').")
    check.done()
    key = PublicKeyModel(name=name, public_key=(public_key or "").strip())
    records.stamp(key, principal.tenant, KIND)
    return records.insert(key)


def get(principal: Principal, key_id: str) -> PublicKeyModel:
    return records.get_visible(PublicKeyModel, key_id, principal, "public key", KIND)


def list_for(principal: Principal) -> list[PublicKeyModel]:
    return records.list_visible(PublicKeyModel, principal, KIND)
