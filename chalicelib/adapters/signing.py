"""KMS: the provenance signing key (an asymmetric ECC_NIST_P256 key for SIGN_VERIFY, made by
infra/resources.py). The only module that talks to KMS. The private key never leaves KMS;
build hosts hold no key at all: only the API side signs.

``sign(message)`` asks KMS for ECDSA_SHA_256 over ``message`` with ``MessageType=DIGEST`` (the
sha256 of the message is sent, so a message of any length is signed: RAW takes at most 4096
bytes), and checks the signature against the published public key before it returns it, so a
signature no verifier would accept is never handed out.

The key id is securesystemslib's default keyid of the public key Kiln publishes: the sha256 of
the canonical JSON of ``{"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval":
{"public": <PEM>}}``, so ``SSlibKey.from_crypto(load_pem_public_key(pem))`` finds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

KEYTYPE = "ecdsa"
SCHEME = "ecdsa-sha2-nistp256"
SIGNING_ALGORITHM = "ECDSA_SHA_256"
KEY_SPEC = "ECC_NIST_P256"


class SigningError(RuntimeError):
    """The key cannot sign (wrong kind of key), or KMS's signature does not verify."""


@dataclasses.dataclass(frozen=True)
class PublicKey:
    keyid: str  # securesystemslib's default keyid (module doc)
    keytype: str
    scheme: str
    public_key_pem: str  # SubjectPublicKeyInfo PEM, as cryptography writes it
    kms_key_id: str  # the key KMS named (its id or ARN), for the log

    def to_dict(self) -> dict[str, str]:
        return {
            "keyid": self.keyid,
            "keytype": self.keytype,
            "scheme": self.scheme,
            "public_key_pem": self.public_key_pem,
        }


def canonical_json(value: Any) -> str:
    """Canonical JSON as securesystemslib writes it (OLPC: keys sorted, no whitespace, only
    quote and backslash escaped), for strings, lists and objects."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{canonical_json(k)}:{canonical_json(v)}" for k, v in items) + "}"
    raise TypeError(f"canonical_json takes strings, lists and objects, not {type(value)}")


def default_keyid(pem: str) -> str:
    key = {"keytype": KEYTYPE, "scheme": SCHEME, "keyval": {"public": pem}}
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()


class Signer:
    """One KMS key, by id, ARN or alias. ``kms`` is a boto3 KMS client (the container's)."""

    def __init__(self, kms: Any, key_id: str) -> None:
        self._kms = kms
        self.key_id = key_id
        self._lock = threading.Lock()
        self._public: tuple[PublicKey, ec.EllipticCurvePublicKey] | None = None

    def public_key(self, refresh: bool = False) -> PublicKey:
        """The key's public half (asked of KMS once per process, or again on ``refresh``)."""
        return self._loaded(refresh)[0]

    def _loaded(self, refresh: bool = False) -> tuple[PublicKey, ec.EllipticCurvePublicKey]:
        with self._lock:
            if self._public is None or refresh:
                self._public = self._fetch()
            return self._public

    def _fetch(self) -> tuple[PublicKey, ec.EllipticCurvePublicKey]:
        answer = self._kms.get_public_key(KeyId=self.key_id)
        usage, spec = (
            answer.get("KeyUsage"),
            answer.get("KeySpec") or answer.get("CustomerMasterKeySpec"),
        )
        if usage != "SIGN_VERIFY" or spec != KEY_SPEC:
            raise SigningError(
                f"KMS key {self.key_id} is {spec}/{usage}: provenance needs {KEY_SPEC}/SIGN_VERIFY"
            )
        loaded = serialization.load_der_public_key(bytes(answer["PublicKey"]))
        if not isinstance(loaded, ec.EllipticCurvePublicKey):
            raise SigningError(f"KMS key {self.key_id} is not an elliptic-curve key")
        pem = loaded.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
        described = PublicKey(
            keyid=default_keyid(pem),
            keytype=KEYTYPE,
            scheme=SCHEME,
            public_key_pem=pem,
            kms_key_id=str(answer.get("KeyId", self.key_id)),
        )
        return described, loaded

    def sign(self, message: bytes) -> tuple[str, bytes]:
        """(keyid, DER ECDSA signature) over sha256(``message``). Raises SigningError when the
        signature does not verify against the public key (asked of KMS again once, in case the
        alias now names another key), and KMS's own errors as they come."""
        digest = hashlib.sha256(message).digest()
        answer = self._kms.sign(
            KeyId=self.key_id,
            Message=digest,
            MessageType="DIGEST",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        signature = bytes(answer["Signature"])
        for refresh in (False, True):
            public, key = self._loaded(refresh)
            if _verifies(key, signature, digest):
                return public.keyid, signature
        raise SigningError(
            f"KMS key {self.key_id} returned a signature that does not verify against its "
            "public key over the sha256 digest (does the KMS endpoint honour MessageType=DIGEST?)"
        )


def _verifies(key: ec.EllipticCurvePublicKey, signature: bytes, digest: bytes) -> bool:
    try:
        key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True
