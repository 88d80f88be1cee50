"""KMS keys of the local stack's moto, kept in the data directory's store
(infra/local/state_persistence.py says how, infra/local/state_store.py where), so that the
provenance key signs with the same private key after a restart and every signature made
before still verifies against its public key.

One record per account and region, rewritten whole after each change (a handful of keys):
``kms-keys``: ``<account>\\0<region>`` -> the pickled keys (private halves as PKCS#8 DER,
symmetric key material, aliases, policies, grants, rotation and deletion state) and tags.
Restored keys are moto's own objects again, so moto_kms's DIGEST signing applies to them.
The hooks are the backend's changing methods, which also catch keys moto makes by itself
(an AWS-managed alias's key made on first use).
"""

from __future__ import annotations

from typing import Any

from moto.kms.models import KmsBackend, kms_backends

from infra.local.state_persistence import Notes, WriteThrough, dumps, join_key, loads, split_key
from infra.local.state_store import StateStore

KEYS = "kms-keys"
_STATE = ("keys", "tagger", "multi_region_configuration")
_CHANGES = (
    "create_key", "update_key_description", "delete_key", "create_alias", "update_alias",
    "delete_alias", "enable_key_rotation", "disable_key_rotation", "put_key_policy",
    "disable_key", "enable_key", "cancel_key_deletion", "schedule_key_deletion",
    "create_grant", "revoke_grant", "retire_grant", "rotate_key_on_demand", "tag_resource",
    "untag_resource",
)  # fmt: skip


def _note(notes: Notes, backend: KmsBackend, args: Any, kwargs: Any, result: Any) -> None:
    notes.add((backend.account_id, backend.region_name))


def _note_replica(notes: Notes, backend: KmsBackend, args: Any, kwargs: Any, result: Any) -> None:
    _note(notes, backend, args, kwargs, result)
    replica = kwargs.get("replica_region", args[1] if len(args) > 1 else None)
    if replica:
        notes.add((backend.account_id, replica))


def _flush(store: StateStore, notes: Notes) -> None:
    for account, region in notes:
        backend = kms_backends[account][region]
        state = {name: getattr(backend, name) for name in _STATE if hasattr(backend, name)}
        store.put(KEYS, join_key(account, region), dumps(state))


def restore(store: StateStore) -> None:
    for key, value in store.items(KEYS):
        account, region = split_key(key)
        backend = kms_backends[account][region]
        for name, saved in loads(value).items():
            setattr(backend, name, saved)


def forget(store: StateStore) -> None:
    """Every key record (moto was reset)."""
    store.delete_prefix(KEYS, "")


_hooks = WriteThrough(_flush, hold=True)


def install() -> None:
    _hooks.install(KmsBackend, {**dict.fromkeys(_CHANGES, _note), "replicate_key": _note_replica})
