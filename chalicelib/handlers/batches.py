"""An SQS batch, as each queue's handler answers it: every message handled on its own; one
that raises anything is logged and named in Lambda's partial batch response, so SQS delivers
it again and, after the queue's maxReceiveCount, moves it to its dead-letter queue (which the
cleanup schedule reports). The others are acknowledged. Nothing is dropped."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from chalicelib import observability

#: {"batchItemFailures": [{"itemIdentifier": <messageId>}]}: the messages SQS is to deliver again
BatchResponse = dict[str, list[dict[str, str]]]


def messages(event: Iterable[Any]) -> Iterator[tuple[str, str]]:
    """(message id, body) of each record of a Chalice SQS event."""
    return ((record.to_dict()["messageId"], record.body) for record in event)


def answer(
    messages: Iterable[tuple[str, str]],
    handle_one: Callable[[str], Any],
    what: str,
    about: Callable[[str], dict[str, Any]] = lambda _body: {},
) -> BatchResponse:
    """Handle each (message id, body); ``about(body)``: what the failure log says of it."""
    log = observability.logger()
    failures: list[dict[str, str]] = []
    for message_id, body in messages:
        log.set_correlation_id(None)  # never the previous message's job
        try:
            handle_one(body)
        except Exception as exc:
            log.exception(
                f"{what} failed; it will be retried, then dead-lettered",
                extra={
                    "message_id": message_id,
                    **about(body),
                    "body": body[:2000],
                    "problem": repr(exc),
                },
            )
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
