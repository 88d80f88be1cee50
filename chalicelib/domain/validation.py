"""Checks of request bodies: every problem is collected into one Invalid (422) per request."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from chalicelib.errors import Invalid, NoInput

#: the longest text field by default (names, file names); IMS's document sets no limits
TEXT_MAX = 255
#: an s3:// link: S3 keys are at most 1,024 bytes
LINK_MAX = 1100
#: key/value lists (template_dictionary, image metadata): entries and their lengths
PAIRS_MAX, KEY_MAX, VALUE_MAX = 128, 255, 1024


def require_object(body: Any) -> dict[str, Any]:
    if body is None or body == {}:
        raise NoInput("No input provided. Determine the specific information that is missing.")
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object", {"body": ["not an object"]})
    return body


class BodyCheck:
    """Read typed fields from a body, collecting every problem before failing once."""

    def __init__(self, body: dict[str, Any], known: Iterable[str], read_only: Iterable[str] = ()):
        self.body = body
        self.errors: dict[str, list[str]] = {}
        allowed = set(known) | set(read_only)
        for field in body:
            if field not in allowed:
                self.fail(field, "Unknown field.")

    def fail(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def _get(self, field: str, required: bool) -> Any:
        if field not in self.body or self.body[field] is None:
            if required:
                self.fail(field, "Missing data for required field.")
            return None
        return self.body[field]

    def string(
        self, field: str, required: bool = False, min_len: int = 0, max_len: int = TEXT_MAX
    ) -> str | None:
        value = self._get(field, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(field, "Not a valid string.")
            return None
        if len(value) < min_len:
            self.fail(field, f"Shorter than minimum length {min_len}.")
        if len(value) > max_len:
            self.fail(field, f"Longer than maximum length {max_len}.")
            return None
        return value

    def choice(self, field: str, choices: Iterable[str], required: bool = False) -> str | None:
        value = self.string(field, required)
        allowed = list(choices)
        if value is not None and value not in allowed:
            self.fail(field, f"Must be one of: {', '.join(allowed)}.")
            return None
        return value

    def uuid(self, field: str, required: bool = False) -> str | None:
        value = self.string(field, required)
        if value is not None:
            try:
                uuid.UUID(value)
            except ValueError:
                self.fail(field, "Not a valid UUID.")
                return None
        return value

    def boolean(self, field: str) -> bool | None:
        value = self._get(field, False)
        if value is not None and not isinstance(value, bool):
            self.fail(field, "Not a valid boolean.")
            return None
        return value

    def integer(self, field: str, minimum: int | None = None) -> int | None:
        value = self._get(field, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, "Not a valid integer.")
            return None
        if minimum is not None and value < minimum:
            self.fail(field, f"Must be greater than or equal to {minimum}.")
        return value

    def key_values(self, field: str) -> list[dict[str, str]] | None:
        """A list of {"key": str, "value": str} (IMS template_dictionary)."""
        value = self._get(field, False)
        if value is None:
            return None
        ok = isinstance(value, list) and all(
            isinstance(item, dict)
            and set(item) == {"key", "value"}
            and isinstance(item["key"], str)
            and isinstance(item["value"], str)
            for item in value
        )
        if not ok:
            self.fail(field, 'Must be a list of {"key": string, "value": string}.')
            return None
        if not pairs_fit(self, field, [(item["key"], item["value"]) for item in value]):
            return None
        return [{"key": item["key"], "value": item["value"]} for item in value]

    def link(self, field: str = "link", required: bool = False) -> dict[str, str] | None:
        value = self._get(field, required)
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("path"), str):
            self.fail(field, "Must be an object with string 'path' and 'type'.")
            return None
        if any(len(str(part)) > LINK_MAX for part in value.values()):
            self.fail(field, f"Longer than maximum length {LINK_MAX}.")
            return None
        if not isinstance(value.get("type"), str):
            self.fail(field, "Missing data for required field 'type'.")
            return None
        extra = set(value) - {"path", "etag", "type"}
        if extra:
            self.fail(field, f"Unknown field(s): {', '.join(sorted(extra))}.")
        if value["type"] != "s3":
            self.fail(field, "Only link type 's3' is supported.")
        return {k: str(v) for k, v in value.items() if k in ("path", "etag", "type")}

    def done(self) -> None:
        if self.errors:
            fields = ", ".join(sorted(self.errors))
            raise Invalid(f"The request has invalid fields: {fields}", dict(self.errors))


def pairs_fit(check: BodyCheck, field: str, pairs: list[tuple[str, str]]) -> bool:
    """At most PAIRS_MAX entries; keys of 1-KEY_MAX and values of at most VALUE_MAX chars."""
    if len(pairs) > PAIRS_MAX:
        check.fail(field, f"At most {PAIRS_MAX} entries.")
        return False
    for key, value in pairs:
        if not 1 <= len(key) <= KEY_MAX or len(value) > VALUE_MAX:
            check.fail(field, f"Keys of 1-{KEY_MAX} and values of at most {VALUE_MAX} characters.")
            return False
    return True
