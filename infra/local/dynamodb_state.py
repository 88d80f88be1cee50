"""DynamoDB tables and items of the local stack's moto, kept in the data directory's store
(infra/local/state_persistence.py says how, infra/local/state_store.py where).

Records, each an after-image:

- ``dynamodb-table``: ``<account>\\0<region>\\0<table>`` -> the table's description as JSON
  (DescribeTable's, with its TTL and tags), enough to create it again;
- ``dynamodb-item``: ``<account>\\0<region>\\0<table>\\0<key>`` -> the item's attributes as
  DynamoDB JSON (binary values base64), ``<key>`` the JSON of its key values, numbers
  normalized so that 1 and 1.0 are one key, as they are one item.

The hooks are moto's own item writes (Table.put_item and delete_item, the backend's
update_item: every PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems and
PartiQL write goes through them) and its table changes. Each DynamoDB request that may write
runs inside the store's batch, and its items are read again and written before the answer,
so a transaction lands whole, and one moto rolled back lands as it was. GSIs need nothing:
moto computes them from the items at query time. moto expires nothing by TTL.
"""

from __future__ import annotations

import base64
import datetime
import json
import sys
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.dynamodb.responses import DynamoHandler

from infra.local.state_persistence import Notes, WriteThrough, argument, join_key, split_key
from infra.local.state_store import StateStore

TABLE = "dynamodb-table"
ITEM = "dynamodb-item"
#: DynamoHandler actions that may write: each runs in one store batch, its writes flushed last
_REQUESTS = (
    "put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items",
    "execute_statement", "execute_transaction", "batch_execute_statement", "create_table",
    "update_table", "delete_table", "update_time_to_live", "tag_resource", "untag_resource",
    "restore_table_from_backup", "restore_table_to_point_in_time", "import_table",
    "update_continuous_backups",
)  # fmt: skip
#: backend methods that change a table's definition (or add or drop tables)
_TABLE_CHANGES = (
    "create_table", "delete_table", "update_table", "update_time_to_live", "tag_resource",
    "untag_resource", "restore_table_from_backup", "restore_table_to_point_in_time",
    "import_table", "update_continuous_backups",
)  # fmt: skip
#: the definitions last written, by table record key: a table change writes only what differs
_written: dict[str, str] = {}


def _key_part(value: DynamoType) -> list[str]:
    raw = value.value
    if value.type == "N":
        try:
            return ["N", str(Decimal(str(raw)).normalize())]
        except InvalidOperation:
            return ["N", str(raw)]
    if isinstance(raw, bytes):
        return [value.type, base64.b64encode(raw).decode("ascii")]
    return [value.type, str(raw)]


def item_key(
    account: str, region: str, table: str, hash_key: DynamoType, range_key: DynamoType | None
) -> str:
    parts = [_key_part(hash_key)] + ([] if range_key is None else [_key_part(range_key)])
    return join_key(account, region, table, json.dumps(parts, separators=(",", ":")))


def _table_key(account: str, region: str, table: str) -> str:
    return join_key(account, region, table)


# -- hooks: what a write touched ---------------------------------------------------------------


def _note_put(notes: Notes, table: Table, args: Any, kwargs: Any, result: Any) -> None:
    attrs = argument(args, kwargs, "item_attrs", 0)
    range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    hash_key = DynamoType(attrs[table.hash_key_attr])
    _note_item(notes, table.account_id, table.region_name, table.name, hash_key, range_key)


def _note_delete(notes: Notes, table: Table, args: Any, kwargs: Any, result: Any) -> None:
    hash_key = argument(args, kwargs, "hash_key", 0)
    range_key = kwargs.get("range_key", args[1] if len(args) > 1 else None)
    _note_item(notes, table.account_id, table.region_name, table.name, hash_key, range_key)


def _note_update(
    notes: Notes, backend: DynamoDBBackend, args: Any, kwargs: Any, result: Any
) -> None:
    name = argument(args, kwargs, "table_name", 0)
    key = argument(args, kwargs, "key", 1)
    table = backend.tables[name]
    if table.hash_key_attr in key:
        hash_key = DynamoType(key[table.hash_key_attr])
        ranged = table.range_key_attr is not None and table.range_key_attr in key
        range_key = DynamoType(key[table.range_key_attr]) if ranged else None  # type: ignore[index]
    else:
        hash_key, range_key = DynamoType(key), None
    _note_item(notes, backend.account_id, backend.region_name, name, hash_key, range_key)


def _note_item(
    notes: Notes,
    account: str,
    region: str,
    table: str,
    hash_key: DynamoType,
    range_key: DynamoType | None,
) -> None:
    """Notes an item by its record key first: two notes compare by it (key values of other
    types, or a missing range key, never meet in a comparison)."""
    key = item_key(account, region, table, hash_key, range_key)
    notes.add(("item", key, account, region, table, hash_key, range_key))


def _note_tables(
    notes: Notes, backend: DynamoDBBackend, args: Any, kwargs: Any, result: Any
) -> None:
    notes.add(("tables", backend.account_id, backend.region_name))


def _flush(store: StateStore, notes: Notes) -> None:
    for note in notes:
        if note[0] == "tables":
            _write_tables(store, dynamodb_backends[note[1]][note[2]])
    for note in notes:
        if note[0] == "item":
            _write_item(store, *note[1:])


def _write_item(
    store: StateStore,
    key: str,
    account: str,
    region: str,
    name: str,
    hash_key: DynamoType,
    range_key: DynamoType | None,
) -> None:
    table = dynamodb_backends[account][region].tables.get(name)
    if table is None:
        return  # dropped with its table
    fits = (range_key is not None) == table.has_range_key  # else no item can have this key
    item = table.get_item(hash_key, range_key) if fits else None
    if item is None:
        store.delete(ITEM, key)
    else:
        store.put(ITEM, key, _item_json(item))


def _item_json(item: Item) -> bytes:
    return dynamo_json_dump(item.to_json()["Attributes"]).encode()


def _definition(table: Table) -> str:
    described = table.describe()["TableDescription"]
    for changing in ("ItemCount", "TableSizeBytes"):  # not the definition: each write's
        described.pop(changing, None)
    return dynamo_json_dump({"table": described, "ttl": table.ttl, "tags": table.tags})


def _write_tables(store: StateStore, backend: DynamoDBBackend) -> None:
    """Each table's definition where it changed; a new table's items (a restored backup's),
    a dropped table's records gone."""
    account, region = backend.account_id, backend.region_name
    prefix = join_key(account, region, "")
    present = set()
    for name, table in backend.tables.items():
        key = _table_key(account, region, name)
        present.add(key)
        definition = _definition(table)
        if _written.get(key) == definition:
            continue
        if key not in _written:
            store.delete_prefix(ITEM, key + "\x00")
            for item in table.all_items():
                store.put(
                    ITEM,
                    item_key(account, region, name, item.hash_key, item.range_key),
                    _item_json(item),
                )
        store.put(TABLE, key, definition.encode())
        _written[key] = definition
    for key in [key for key in _written if key.startswith(prefix) and key not in present]:
        store.delete(TABLE, key)
        store.delete_prefix(ITEM, key + "\x00")
        del _written[key]


# -- restore -------------------------------------------------------------------------------------


def _wire(value: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB JSON as moto holds it: binary values as bytes."""
    ((kind, inner),) = value.items()
    if kind == "B" and isinstance(inner, str):
        return {kind: base64.b64decode(inner)}
    if kind == "BS":
        return {kind: [base64.b64decode(v) if isinstance(v, str) else v for v in inner]}
    if kind == "M":
        return {kind: {name: _wire(v) for name, v in inner.items()}}
    if kind == "L":
        return {kind: [_wire(v) for v in inner]}
    return {kind: inner}


def _given(name: str, value: Any) -> dict[str, Any]:
    return {name: value} if value else {}


def _throughput(given: dict[str, Any] | None) -> dict[str, Any] | None:
    """Capacity as CreateTable takes it, or None where none was set (described as zeros)."""
    if not given or not (given.get("ReadCapacityUnits") or given.get("WriteCapacityUnits")):
        return None
    return {k: given[k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")}


def _warm(given: dict[str, Any] | None) -> dict[str, Any] | None:
    return {k: v for k, v in given.items() if k != "Status"} if given else None


def _create(backend: DynamoDBBackend, saved: dict[str, Any]) -> Table:
    """The table as it was described (its items come after)."""
    described = saved["table"]
    billing = (described.get("BillingModeSummary") or {}).get("BillingMode") or "PROVISIONED"
    indexes = [
        {
            "IndexName": index["IndexName"],
            "KeySchema": index["KeySchema"],
            "Projection": index["Projection"],
            **_given("ProvisionedThroughput", _throughput(index.get("ProvisionedThroughput"))),
            **_given("WarmThroughput", _warm(index.get("WarmThroughput"))),
        }
        for index in described.get("GlobalSecondaryIndexes") or []
    ]
    sse = described.get("SSEDescription")
    table = backend.create_table(
        described["TableName"],
        schema=described["KeySchema"],
        throughput=_throughput(described.get("ProvisionedThroughput")),
        attr=described["AttributeDefinitions"],
        global_indexes=indexes,
        indexes=described.get("LocalSecondaryIndexes") or [],
        streams=described.get("StreamSpecification"),
        billing_mode=billing,
        sse_specification=(
            {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": sse.get("KMSMasterKeyArn")}
            if sse
            else None
        ),
        tags=saved.get("tags") or [],
        deletion_protection_enabled=described.get("DeletionProtectionEnabled"),
        warm_throughput=_warm(described.get("WarmThroughput")),
    )
    table.ttl = saved.get("ttl") or table.ttl
    created = described.get("CreationDateTime")
    if isinstance(created, (int, float)):
        table.created_at = datetime.datetime.fromtimestamp(created, datetime.UTC).replace(
            tzinfo=None
        )
    return table


def _insert(table: Table, attrs: dict[str, Any]) -> None:
    """The item put straight into the table: it was checked when it was first written."""
    item = cast(Item, Item.__new__(Item))
    item.hash_key = DynamoType(_wire(attrs[table.hash_key_attr]))
    item.range_key = (
        DynamoType(_wire(attrs[table.range_key_attr])) if table.range_key_attr else None
    )
    values = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.__init__(values)
    for name, value in attrs.items():
        dict.__setitem__(values, name, DynamoType(_wire(value)))
    item.attrs = values
    if item.range_key is not None:
        table.items[item.hash_key][item.range_key] = item
    else:
        table.items[item.hash_key] = item  # type: ignore[assignment]


def restore(store: StateStore) -> None:
    """Every saved table, then every saved item into it (before the server starts)."""
    tables: dict[str, Table] = {}
    for key, value in store.items(TABLE):
        account, region, name = split_key(key)
        backend = dynamodb_backends[account][region]
        backend.tables.pop(name, None)
        tables[key] = _create(backend, json.loads(value))
        _written[key] = _definition(tables[key])
    for key, value in store.items(ITEM):
        table = tables.get(key.rsplit("\x00", 1)[0])
        if table is not None:
            _insert(table, json.loads(value))
    _forget_partitions()


def _forget_partitions() -> None:
    """moto_process's GSI partitions are built from items: none may outlive a restore. (Its
    module is ``__main__`` when run with ``python -m``: it is found, not imported again.)"""
    for module in (sys.modules.get("__main__"), sys.modules.get("infra.local.moto_process")):
        lock, partitions = getattr(module, "_lock", None), getattr(module, "_partitions", None)
        generation = getattr(module, "_generation", None)
        if lock is None or not isinstance(partitions, dict) or not isinstance(generation, list):
            continue
        with lock:
            generation[0] += 1
            partitions.clear()


def forget(store: StateStore) -> None:
    """Every table and item record (moto was reset)."""
    store.delete_prefix(TABLE, "")
    store.delete_prefix(ITEM, "")
    _written.clear()


_hooks = WriteThrough(_flush, hold=True)


def install() -> None:
    _hooks.install(DynamoHandler, dict.fromkeys(_REQUESTS))
    _hooks.install(Table, {"put_item": _note_put, "delete_item": _note_delete})
    _hooks.install(
        DynamoDBBackend,
        {"update_item": _note_update, **dict.fromkeys(_TABLE_CHANGES, _note_tables)},
    )
