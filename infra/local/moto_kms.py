"""KMS Sign and Verify with ``MessageType=DIGEST`` as AWS does them, for moto (5.2.5 parses
MessageType and ignores it: a digest is hashed again, so its signature verifies against
sha256(digest), never against the digest, and no verifier outside moto accepts it;
getmoto/moto#10202). Kiln's provenance signer (chalicelib/adapters/signing.py) always signs a
digest, as AWS's documentation advises for messages that may exceed 4096 bytes.

With ``install()`` (idempotent), a DIGEST request to an ECDSA key signs or verifies the given
digest itself (``Prehashed``), refusing one of the wrong length as KMS does; RAW requests and
other keys are moto's, unchanged. The in-process tests install it (tests/conftest.py); the local
stack's moto process installs it with the other fidelity fixes (infra/local/moto_fidelity.py).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from moto.kms.exceptions import ValidationException
from moto.kms.responses import KmsResponse
from moto.kms.utils import ECDSAPrivateKey

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "ECDSA_SHA_256": hashes.SHA256,
    "ECDSA_SHA_384": hashes.SHA384,
    "ECDSA_SHA_512": hashes.SHA512,
}
_request = threading.local()  # whether the request being answered on this thread is DIGEST


def _digest_request(original: Callable[[KmsResponse], str]) -> Callable[[KmsResponse], str]:
    @functools.wraps(original)
    def answer(self: KmsResponse) -> str:
        _request.digest = self._get_param("MessageType") == "DIGEST"
        try:
            return original(self)
        finally:
            _request.digest = False

    answer.kiln_digest = True  # type: ignore[attr-defined]
    return answer


def _prehashed(signing_algorithm: str, digest: bytes) -> ec.ECDSA:
    algorithm = _HASHES[signing_algorithm]()
    if len(digest) != algorithm.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {signing_algorithm}.")
    return ec.ECDSA(utils.Prehashed(algorithm))


def _sign(original: Callable[..., bytes]) -> Callable[..., bytes]:
    @functools.wraps(original)
    def sign(self: ECDSAPrivateKey, message: bytes, signing_algorithm: str) -> bytes:
        if not getattr(_request, "digest", False):
            return original(self, message, signing_algorithm)
        _check(self, signing_algorithm)
        return bytes(self.private_key.sign(message, _prehashed(signing_algorithm, message)))

    sign.kiln_digest = True  # type: ignore[attr-defined]
    return sign


def _verify(original: Callable[..., bool]) -> Callable[..., bool]:
    @functools.wraps(original)
    def verify(
        self: ECDSAPrivateKey, message: bytes, signature: bytes, signing_algorithm: str
    ) -> bool:
        if not getattr(_request, "digest", False):
            return original(self, message, signature, signing_algorithm)
        _check(self, signing_algorithm)
        try:
            self.private_key.public_key().verify(
                signature, message, _prehashed(signing_algorithm, message)
            )
        except InvalidSignature:
            return False
        return True

    verify.kiln_digest = True  # type: ignore[attr-defined]
    return verify


def _check(key: ECDSAPrivateKey, signing_algorithm: str) -> None:
    if signing_algorithm not in key.valid_signing_algorithms:
        raise ValidationException(
            f"1 validation error detected: Value '{signing_algorithm}' at 'SigningAlgorithm' "
            f"failed to satisfy constraint: Member must satisfy enum value set: "
            f"{key.valid_signing_algorithms}"
        )


def install() -> None:
    """Idempotent: each method is wrapped once per process."""
    for name in ("sign", "verify"):
        if not getattr(getattr(KmsResponse, name), "kiln_digest", False):
            setattr(KmsResponse, name, _digest_request(getattr(KmsResponse, name)))
    if not getattr(ECDSAPrivateKey.sign, "kiln_digest", False):
        ECDSAPrivateKey.sign = _sign(ECDSAPrivateKey.sign)  # type: ignore[method-assign]
    if not getattr(ECDSAPrivateKey.verify, "kiln_digest", False):
        ECDSAPrivateKey.verify = _verify(ECDSAPrivateKey.verify)  # type: ignore[method-assign]


def honours_digest(kms: Any, key_id: str) -> bool:
    """Whether the KMS endpoint signs a digest as AWS does (a check for the local stack)."""
    digest = hashlib.sha256(b"kiln").digest()
    signed = kms.sign(
        KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    )
    raw = kms.verify(
        KeyId=key_id,
        Message=b"kiln",
        MessageType="RAW",
        Signature=signed["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
    )
    return bool(raw["SignatureValid"])
