"""Verify a Kiln build output against its signed SLSA provenance (docs/provenance.md), with
securesystemslib and nothing of Kiln's:

    python examples/verify_provenance.py provenance.dsse.json rootfs.squashfs \\
        --key-url http://127.0.0.1:8000/kiln/v1/provenance/keys

(or ``--key-file keys.json``: that route's answer saved, or a PEM public key). Prints ``OK: ...``
and exits 0 when the envelope is signed by a published key and the file's sha256 is one of the
statement's subjects; prints ``FAILED: ...`` and exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import Key, SSlibKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"


class Failed(Exception):
    pass


def published_keys(key_url: str | None, key_file: str | None) -> list[Key]:
    """Each published key as securesystemslib makes it from its PEM; its keyid must be the one
    Kiln published (securesystemslib's default keyid of that key)."""
    if key_url:
        with urllib.request.urlopen(key_url, timeout=30) as answer:  # noqa: S310 (any URL given)
            text = answer.read().decode("utf-8")
    else:
        text = Path(str(key_file)).read_text(encoding="utf-8")
    if text.lstrip().startswith("-----BEGIN"):
        listed: list[dict[str, Any]] = [{"public_key_pem": text}]
    else:
        listed = json.loads(text)["keys"]
    keys: list[Key] = []
    for entry in listed:
        key = SSlibKey.from_crypto(load_pem_public_key(entry["public_key_pem"].encode("utf-8")))
        if entry.get("keyid") and entry["keyid"] != key.keyid:
            raise Failed(f"published keyid {entry['keyid']} is not its key's ({key.keyid})")
        keys.append(key)
    if not keys:
        raise Failed("no public key was published")
    return keys


def verify(envelope_path: str, artifact_path: str, keys: list[Key]) -> str:
    envelope = Envelope.from_dict(json.loads(Path(envelope_path).read_text(encoding="utf-8")))
    if envelope.payload_type != PAYLOAD_TYPE:
        raise Failed(f"payloadType is {envelope.payload_type!r}, not {PAYLOAD_TYPE}")
    try:
        envelope.verify(keys, 1)
    except Exception as exc:  # securesystemslib's VerificationError, or a malformed signature
        raise Failed(f"the envelope's signature does not verify: {exc}") from None
    statement = json.loads(envelope.payload)
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        raise Failed("the payload is not an in-toto statement of SLSA provenance v1")
    digest = hashlib.sha256()
    with open(artifact_path, "rb") as artifact:
        for chunk in iter(lambda: artifact.read(1 << 20), b""):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    names = [s["name"] for s in statement["subject"] if s.get("digest", {}).get("sha256") == sha256]
    if not names:
        raise Failed(f"{artifact_path} (sha256 {sha256}) is not a subject of this provenance")
    run = statement["predicate"]["runDetails"]
    return (
        f"OK: {artifact_path} is {names[0]} (sha256 {sha256}), built by {run['builder']['id']} "
        f"in job {run['metadata']['invocationId']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("envelope", help="the DSSE envelope (provenance.dsse.json)")
    parser.add_argument("artifact", help="the build output to check")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--key-url", help="GET /kiln/v1/provenance/keys of the Kiln that built it")
    source.add_argument("--key-file", help="that answer saved, or a PEM public key")
    args = parser.parse_args(argv)
    try:
        print(verify(args.envelope, args.artifact, published_keys(args.key_url, args.key_file)))
    except (Failed, OSError, ValueError, KeyError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
