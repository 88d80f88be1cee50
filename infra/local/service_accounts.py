"""Service accounts for the local stack's OAuth2 token endpoint (token_server.py).

An account is a client_id and a secret bound to one tenant and one role. They live in
``<state dir>/service-accounts.json`` (mode 0600), which holds only a salted scrypt hash of each
secret: the secret itself is shown once, to whoever created the account. `make up` and
`make token SERVICE_ACCOUNT=1` may write at the same time, so every change holds an exclusive
flock on ``service-accounts.lock`` and replaces the file whole (readers never see half of it).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROLES = ("admin", "user", "worker")  # what chalicelib/auth.py accepts in a token
FILE_NAME = "service-accounts.json"
LOCK_NAME = "service-accounts.lock"
CLIENT_ID_PREFIX = "kiln-sa-"
# scrypt with n=2**14, r=8, p=1 (16 MiB, 50-200 ms): a secret is 256 random bits, so the slow
# hash is defence in depth for a leaked file; cheap enough for a token request per client per
# few minutes
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_SCRYPT_MAXMEM = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Account:
    client_id: str
    tenant: str
    role: str
    created: float  # seconds since the epoch
    label: str = ""  # who made it: "make-up" for the stack's own account, else ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, salt: bytes | None = None, **params: int) -> str:
    """``scrypt$n$r$p$salt$hash``: the parameters travel with the hash, so they may change."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    p = {**SCRYPT, **params}
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, **p, maxmem=_SCRYPT_MAXMEM, dklen=32)
    return f"scrypt${p['n']}${p['r']}${p['p']}${_b64(salt)}${_b64(digest)}"


def secret_matches(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hash_secret(secret, _unb64(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate.encode("ascii"), stored.encode("ascii"))


# what verify() compares an unknown client's secret with, so that an unknown client_id takes as
# long to refuse as a wrong secret (no telling which ids exist from the timing)
_DECOY = hash_secret(secrets.token_urlsafe(32))


class ServiceAccounts:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE_NAME

    def create(
        self, tenant: str, role: str, label: str = "", replace_label: bool = False
    ) -> tuple[str, str]:
        """A new account's client_id and secret (shown only here). ``replace_label``: first
        delete the accounts with this ``label`` (`make up` replaces its previous start's)."""
        if not isinstance(tenant, str) or not tenant.strip() or len(tenant) > 256:
            raise ValueError("tenant must be a non-empty string")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        secret = secrets.token_urlsafe(32)
        account = Account(
            client_id=CLIENT_ID_PREFIX + secrets.token_hex(8),
            tenant=tenant,
            role=role,
            created=time.time(),
            label=label,
        )
        record = {**dataclasses.asdict(account), "secret_hash": hash_secret(secret)}
        with self._locked() as records:
            if replace_label:
                for client_id in [c for c, r in records.items() if r.get("label") == label]:
                    del records[client_id]
            records[account.client_id] = record
        return account.client_id, secret

    def delete(self, client_id: str) -> bool:
        with self._locked() as records:
            return records.pop(client_id, None) is not None

    def get(self, client_id: str) -> Account | None:
        record = self._read().get(client_id)
        return _account(record) if record else None

    def all(self) -> list[Account]:
        return [_account(record) for record in self._read().values()]

    def verify(self, client_id: str, secret: str) -> Account | None:
        """The account when ``secret`` is its secret; None for a wrong secret or unknown id."""
        record = self._read().get(client_id)
        if record is None:
            secret_matches(secret, _DECOY)
            return None
        return _account(record) if secret_matches(secret, record["secret_hash"]) else None

    def _read(self) -> dict[str, dict[str, Any]]:
        """Without the lock: the file is only ever replaced whole."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return dict(data.get("accounts", {}))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The accounts, under the lock, to change in place; written back (atomically) after."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            records = self._read()
            yield records
            self._write(records)
        finally:
            os.close(lock_fd)  # releases the lock

    def _write(self, records: dict[str, dict[str, Any]]) -> None:
        fd, partial = tempfile.mkstemp(prefix=".service-accounts.", dir=self.state_dir)  # 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "accounts": records}, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise


def _account(record: dict[str, Any]) -> Account:
    return Account(
        client_id=record["client_id"],
        tenant=record["tenant"],
        role=record["role"],
        created=float(record["created"]),
        label=record.get("label", ""),
    )
