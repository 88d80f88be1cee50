"""The moto process's DynamoDB, SQS and KMS state, written through to the data directory's store
(infra/local/state_store.py) and read back when the process starts (issue: "The embedded stack
keeps its data"). infra/local/moto_process.py calls ``install()`` after its other patches, when
a store is open: the saved state is restored first, before the server answers anything, then
the hooks go in.

Each service's module hooks the moto methods that change its state. A hook notes what it
touched; once the outermost hooked call on a thread returns, the after-images of everything
noted are written in one store batch, before the answer goes out: dynamodb_state (tables,
items), sqs_state (queues, messages with their receive state), kms_state (keys with their
private halves, aliases, policies). Step Functions executions are not kept: they hold threads
and task tokens, and the stack dispatches jobs again from their records. moto's reset
(POST /moto-api/reset) forgets the kept state with the rest.

Pickling helpers are here too: moto's objects pickle except a queue's ``threading.Condition``
and a KMS key's ``cryptography`` private key, which are reduced to a fresh Condition and to
the key's PKCS#8 DER.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from infra.local import state_store
from infra.local.state_store import StateStore

log = logging.getLogger(__name__)

_PRIVATE_KEYS = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
#: what a hook notes: the things whose after-images the flush writes
Notes = set[tuple[Any, ...]]
Note = Callable[[Notes, Any, tuple[Any, ...], dict[str, Any], Any], None]


def _load_private_key(der: bytes) -> Any:
    return serialization.load_der_private_key(der, password=None)


class _Pickler(pickle.Pickler):
    """pickle.Pickler that also takes a Condition (remade empty) and a private key (as DER)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()
        if isinstance(obj, _PRIVATE_KEYS):
            der = obj.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return _load_private_key, (der,)
        return NotImplemented


def dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    return pickle.loads(data)  # noqa: S301 (the stack's own file, written by dumps)


class WriteThrough:
    """One service's hooks. ``hook(method, note)`` wraps a moto method: after it returns (or
    raises), ``note`` adds what it may have changed to the thread's notes; when the outermost
    hooked call of this service on the thread ends, ``flush(store, notes)`` writes their
    after-images in one batch. With ``hold``, the outermost call runs inside the store's
    batch: the service's writes and their flushes are then serialized with every other
    writer, so an after-image is never read while another request is half-way through a
    change (DynamoDB, KMS; SQS does not hold: a receive may wait up to 20 s for a message)."""

    def __init__(self, flush: Callable[[StateStore, Notes], None], hold: bool) -> None:
        self._flush = flush
        self._hold = hold
        self._local = threading.local()

    def hook(self, method: Callable[..., Any], note: Note | None = None) -> Callable[..., Any]:
        @functools.wraps(method)
        def hooked(owner: Any, *args: Any, **kwargs: Any) -> Any:
            store = state_store.current()
            if store is None:
                return method(owner, *args, **kwargs)
            local = self._local
            depth = getattr(local, "depth", 0)
            if depth == 0:
                local.notes = set()
            local.depth = depth + 1
            result, error = None, None
            held = store.batch() if self._hold and depth == 0 else contextlib.nullcontext()
            with held:  # committed even when moto refuses: it may have changed something first
                try:
                    result = method(owner, *args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 (raised again below)
                    error = exc
                finally:
                    local.depth = depth
                if note is not None:
                    try:
                        note(local.notes, owner, args, kwargs, result)
                    except Exception:  # a malformed request moto refused: nothing changed
                        log.debug("no note for %s", method.__qualname__, exc_info=True)
                if depth == 0:
                    notes, local.notes = local.notes, set()
                    if notes:
                        with store.batch():
                            self._flush(store, notes)
            if error is not None:
                raise error
            return result

        hooked.kiln_write_through = True  # type: ignore[attr-defined]
        return hooked

    def install(self, owner: type, names: dict[str, Note | None]) -> None:
        """Hooks each named method of ``owner`` (once: installing again changes nothing)."""
        for name, note in names.items():
            method = getattr(owner, name)
            if not getattr(method, "kiln_write_through", False):
                setattr(owner, name, self.hook(method, note))


def argument(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, position: int) -> Any:
    """A hooked method's argument, given by position (after self) or by name."""
    return kwargs[name] if name in kwargs else args[position]


def split_key(key: str) -> list[str]:
    return key.split("\x00")


def join_key(*parts: str) -> str:
    return "\x00".join(parts)


@contextlib.contextmanager
def _timed(what: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log.info("restored %s in %.2f s", what, time.perf_counter() - started)


def install() -> None:
    """Restores the saved state, then hooks every change of it (no store open: nothing)."""
    store = state_store.current()
    if store is None:
        return
    from infra.local import dynamodb_state, kms_state, sqs_state

    with _timed("KMS"):
        kms_state.restore(store)
    with _timed("DynamoDB"):
        dynamodb_state.restore(store)
    with _timed("SQS"):
        sqs_state.restore(store)
    kms_state.install()
    dynamodb_state.install()
    sqs_state.install()
    _forget_on_reset()


def _forget_on_reset() -> None:
    """moto's reset (POST /moto-api/reset) empties every backend: the kept state goes too,
    or the next start would bring back what the reset removed."""
    from moto.moto_api._internal.models import MotoAPIBackend

    from infra.local import dynamodb_state, kms_state, sqs_state

    original = MotoAPIBackend.reset
    if getattr(original, "kiln_write_through", False):
        return

    @functools.wraps(original)
    def reset(self: MotoAPIBackend) -> None:
        store = state_store.current()
        if store is None:
            original(self)
            return
        with store.batch():
            original(self)
            for module in (dynamodb_state, sqs_state, kms_state):
                module.forget(store)

    reset.kiln_write_through = True  # type: ignore[attr-defined]
    MotoAPIBackend.reset = reset  # type: ignore[method-assign]
