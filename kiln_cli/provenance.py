"""A build's signed provenance checked as examples/verify_provenance.py checks it, with the same
library (securesystemslib): the DSSE envelope must be signed by a key Kiln publishes
(``GET /kiln/v1/provenance/keys``), its payload an in-toto Statement v1 of SLSA provenance v1,
and every downloaded file the statement names must have the sha256 it names."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from kiln_cli.client import KILN, KilnClient
from kiln_cli.errors import Failed

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
ENVELOPE_TYPE = "application/vnd.dsse.envelope.v1+json"


@dataclasses.dataclass(frozen=True)
class Verified:
    keyids: list[str]  # the published keys whose signature verified
    subjects: list[str]  # downloaded files the statement names, each with its sha256 matching
    not_covered: list[str]  # downloaded files the statement does not name (the log, itself)
    invocation: str  # the job the statement says built them

    def as_json(self) -> dict[str, Any]:
        return {"verified": True, **dataclasses.asdict(self)}


def published_keys(client: KilnClient) -> list[Any]:
    """Each published key as securesystemslib makes it from its PEM; a listed keyid must be
    that key's own."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    listed = client.get(f"{KILN}/provenance/keys").get("keys") or []
    keys = []
    for entry in listed:
        key = SSlibKey.from_crypto(load_pem_public_key(entry["public_key_pem"].encode("utf-8")))
        if entry.get("keyid") and entry["keyid"] != key.keyid:
            raise Failed(f"published keyid {entry['keyid']} is not its key's ({key.keyid})")
        keys.append(key)
    if not keys:
        raise Failed("Kiln publishes no provenance key to verify with")
    return keys


def verify(envelope_path: Path, files: dict[str, str], keys: list[Any]) -> Verified:
    """``files``: each downloaded file's name and sha256."""
    from securesystemslib.dsse import Envelope

    try:
        envelope = Envelope.from_dict(json.loads(envelope_path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise Failed(f"{envelope_path.name} is not a DSSE envelope: {exc}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise Failed(f"provenance payloadType is {envelope.payload_type!r}, not {PAYLOAD_TYPE}")
    try:
        signed_by = envelope.verify(keys, 1)
    except Exception as exc:  # securesystemslib's VerificationError, or a malformed signature
        raise Failed(f"the provenance signature does not verify: {exc}") from None
    statement = json.loads(envelope.payload)
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        raise Failed("the provenance payload is not an in-toto statement of SLSA provenance v1")
    subjects = {s.get("name"): s.get("digest", {}).get("sha256") for s in statement["subject"]}
    matched, not_covered = [], []
    for name, sha256 in sorted(files.items()):
        if name not in subjects:
            not_covered.append(name)
        elif subjects[name] != sha256:
            raise Failed(f"{name} (sha256 {sha256}) is not the {name} the provenance attests")
        else:
            matched.append(name)
    if not matched:
        raise Failed("no downloaded file is a subject of the provenance")
    invocation = statement["predicate"]["runDetails"]["metadata"].get("invocationId", "")
    return Verified(sorted(signed_by), matched, not_covered, str(invocation))
