"""SQS queues and messages of the local stack's moto, kept in the data directory's store
(infra/local/state_persistence.py says how, infra/local/state_store.py where).

Records, each an after-image (pickled moto objects):

- ``sqs-queue``: ``<account>\\0<region>\\0<queue>`` -> the queue's attributes (redrive policy,
  visibility timeout, tags, policy, ARN: its URL and ARN are the same after a restart);
- ``sqs-message``: ``<account>\\0<region>\\0<queue>\\0<message id>`` -> (its place in the
  queue, the message): body, attributes, receive count, current and earlier receipt handles,
  and when it becomes visible or stops being delayed (absolute times: an in-flight message
  comes back in flight until its timeout, a delayed one delayed, and a handle given out
  before the restart still deletes it).

The hooks are moto's backend methods (every SendMessage, ReceiveMessage, DeleteMessage,
ChangeMessageVisibility, their batches, PurgeQueue, the queue calls, and the messages S3 posts
to a queue by itself). A send writes its message; anything else compares the queue's messages
with what was last written for it (this module keeps their receive state in memory) and writes
what differs: a receive writes the messages it handed out and those it moved to the
dead-letter queue. Not kept: the receipt handles of messages already deleted (deleting one
again after a restart is refused, not ignored).
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from moto.sqs.models import Message, Queue, SQSBackend, sqs_backends

from infra.local.state_persistence import (
    Notes,
    WriteThrough,
    argument,
    dumps,
    join_key,
    loads,
    split_key,
)
from infra.local.state_store import StateStore

QUEUE = "sqs-queue"
MESSAGE = "sqs-message"
#: a queue's state that is not its attributes (messages are records of their own) or that
#: is made again at restore (the lock, the dead-letter queue from the redrive policy)
_NOT_ATTRIBUTES = (
    "_messages", "_pending_messages", "deleted_messages", "_messages_lock",
    "dead_letter_queue", "lambda_event_source_mappings",
)  # fmt: skip
_QUEUE_CHANGES = (
    "create_queue", "set_queue_attributes", "tag_queue", "untag_queue", "add_permission",
    "remove_permission",
)  # fmt: skip
#: queue key -> message id -> (place in the queue, receive state last written)
_written: dict[str, dict[str, tuple[int, tuple[Any, ...]]]] = {}
_places = threading.Lock()
_last_place = [0]


def _next_place() -> int:
    with _places:
        _last_place[0] = max(_last_place[0] + 1, time.time_ns())
        return _last_place[0]


def _receive_state(message: Message) -> tuple[Any, ...]:
    return (
        message.receipt_handle,
        message.visible_at,
        message.delayed_until,
        message.approximate_receive_count,
        message.approximate_first_receive_timestamp,
    )


def _queue_name(args: Any, kwargs: Any) -> str:
    return str(kwargs.get("queue_name", kwargs.get("name", args[0] if args else "")))


# -- hooks ---------------------------------------------------------------------------------------


def _note_queue(notes: Notes, backend: SQSBackend, args: Any, kwargs: Any, result: Any) -> None:
    notes.add(("queue", backend.account_id, backend.region_name, _queue_name(args, kwargs)))


def _note_messages(notes: Notes, backend: SQSBackend, args: Any, kwargs: Any, result: Any) -> None:
    notes.add(("messages", backend.account_id, backend.region_name, _queue_name(args, kwargs)))


def _note_received(notes: Notes, backend: SQSBackend, args: Any, kwargs: Any, result: Any) -> None:
    _note_messages(notes, backend, args, kwargs, result)
    queue = backend.queues.get(_queue_name(args, kwargs))
    if queue is not None and queue.dead_letter_queue is not None:  # a receive moves some there
        dead_letter = queue.dead_letter_queue.name
        notes.add(("messages", backend.account_id, backend.region_name, dead_letter))


def _note_purge(notes: Notes, backend: SQSBackend, args: Any, kwargs: Any, result: Any) -> None:
    _note_queue(notes, backend, args, kwargs, result)
    _note_messages(notes, backend, args, kwargs, result)


def _note_sent(notes: Notes, backend: SQSBackend, args: Any, kwargs: Any, result: Any) -> None:
    name = argument(args, kwargs, "queue_name", 0)
    queue = backend.queues.get(name)
    if result is None or queue is None:
        return
    if queue.fifo_queue or queue.lambda_event_source_mappings:  # deduplicated, or consumed
        notes.add(("messages", backend.account_id, backend.region_name, name))
    else:
        notes.add(("sent", backend.account_id, backend.region_name, name, result))


def _flush(store: StateStore, notes: Notes) -> None:
    for note in sorted(notes, key=lambda note: note[0] != "queue"):  # queues first
        kind, account, region, name = note[:4]
        backend = sqs_backends[account][region]
        queue = backend.queues.get(name)
        key = join_key(account, region, name)
        if queue is None:
            store.delete(QUEUE, key)
            store.delete_prefix(MESSAGE, key + "\x00")
            _written.pop(key, None)
        elif kind == "queue":
            store.put(QUEUE, key, _queue_record(queue))
        elif kind == "sent":
            _write_sent(store, queue, key, note[4])
        else:
            _write_messages(store, queue, key)


def _queue_record(queue: Queue) -> bytes:
    return dumps({k: v for k, v in vars(queue).items() if k not in _NOT_ATTRIBUTES})


def _write_message(
    store: StateStore, written: dict[str, Any], key: str, message: Message, place: int
) -> None:
    store.put(MESSAGE, join_key(key, message.id), dumps((place, message)))
    written[message.id] = (place, _receive_state(message))


def _write_sent(store: StateStore, queue: Queue, key: str, message: Message) -> None:
    written = _written.setdefault(key, {})
    if message.id in written or message not in queue._messages:
        return  # written by another thread's receive, or already gone
    _write_message(store, written, key, message, _next_place())


def _write_messages(store: StateStore, queue: Queue, key: str) -> None:
    """The queue's messages whose receive state differs from what was written; those written
    that are gone, deleted."""
    written = _written.setdefault(key, {})
    present = {message.id: message for message in list(queue._messages)}
    for gone in written.keys() - present.keys():
        store.delete(MESSAGE, join_key(key, gone))
        del written[gone]
    for message_id, message in present.items():
        before = written.get(message_id)
        if before is None:
            _write_message(store, written, key, message, _next_place())
        elif before[1] != _receive_state(message):
            _write_message(store, written, key, message, before[0])


# -- restore -------------------------------------------------------------------------------------


def _queue(saved: dict[str, Any]) -> Queue:
    queue = cast(Queue, Queue.__new__(Queue))
    vars(queue).update(saved)
    queue._messages = []
    queue._pending_messages = set()
    queue.deleted_messages = set()
    queue._messages_lock = threading.Condition()
    queue.dead_letter_queue = None
    queue.lambda_event_source_mappings = {}
    return queue


def restore(store: StateStore) -> None:
    """Every saved queue (linked to its dead-letter queue), then its messages in their order
    with their receive state (before the server starts)."""
    queues: dict[str, Queue] = {}
    for key, value in store.items(QUEUE):
        account, region, name = split_key(key)
        queues[key] = sqs_backends[account][region].queues[name] = _queue(loads(value))
    by_arn = {queue.queue_arn: queue for queue in queues.values()}
    for queue in queues.values():
        policy = getattr(queue, "redrive_policy", None)
        if policy:
            queue.dead_letter_queue = by_arn.get(policy.get("deadLetterTargetArn"))
    saved: dict[str, list[tuple[int, Message]]] = {}
    for key, value in store.items(MESSAGE):
        saved.setdefault(key.rsplit("\x00", 1)[0], []).append(loads(value))
    for key, messages in saved.items():
        if key not in queues:
            continue
        queue = queues[key]
        messages.sort(key=lambda entry: entry[0])
        queue._messages = [message for _, message in messages]
        queue._pending_messages = {
            message
            for message in queue._messages
            if message.receipt_handle is not None and not message.visible
        }
        _written[key] = {m.id: (place, _receive_state(m)) for place, m in messages}
        _last_place[0] = max([_last_place[0], *(place for place, _ in messages)])


def forget(store: StateStore) -> None:
    """Every queue and message record (moto was reset)."""
    store.delete_prefix(QUEUE, "")
    store.delete_prefix(MESSAGE, "")
    _written.clear()


_hooks = WriteThrough(_flush, hold=False)


def install() -> None:
    _hooks.install(
        SQSBackend,
        {
            **dict.fromkeys(_QUEUE_CHANGES, _note_queue),
            "delete_queue": _note_queue,
            "purge_queue": _note_purge,
            "send_message": _note_sent,
            "send_message_batch": None,
            "receive_message": _note_received,
            "delete_message": _note_messages,
            "delete_message_batch": None,
            "change_message_visibility": _note_messages,
            "change_message_visibility_batch": None,
        },
    )
