"""Where ``kiln`` finds the Kiln it talks to and the token it sends.

Each of the URL and the token comes from the first of these that has it:

1. the flags ``--url`` and ``--token``;
2. the environment, ``KILN_URL`` and ``KILN_TOKEN``;
3. the saved login (``kiln login``): ``$KILN_CONFIG``, else ``~/.config/kiln/config.json``;
4. the local stack's ``stack.json`` (``api_url`` and ``tokens.user``):
   ``$KILN_STATE_DIR/stack.json``, else the nearest ``.kiln/stack.json`` in the current
   directory or above it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from kiln_cli.errors import BadInput

URL_ENV, TOKEN_ENV = "KILN_URL", "KILN_TOKEN"
CONFIG_ENV, STATE_DIR_ENV = "KILN_CONFIG", "KILN_STATE_DIR"


@dataclasses.dataclass(frozen=True)
class Connection:
    """The Kiln to call and the token to call it with, and where each came from
    (``flag``, ``env``, ``login``, ``stack``)."""

    url: str
    token: str | None
    url_source: str
    token_source: str | None


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What one source offers (either may be missing)."""

    source: str
    url: str | None
    token: str | None


def config_path() -> Path:
    """The saved login's file."""
    configured = os.environ.get(CONFIG_ENV)
    return Path(configured) if configured else Path.home() / ".config" / "kiln" / "config.json"


def stack_path() -> Path:
    """The local stack's ``stack.json`` (``make up`` writes it): in ``$KILN_STATE_DIR``, else
    the nearest ``.kiln/stack.json`` from the current directory up (as git finds ``.git``:
    ``kiln`` works from anywhere inside the checkout)."""
    state_dir = os.environ.get(STATE_DIR_ENV)
    if state_dir:
        return Path(state_dir) / "stack.json"
    here = Path.cwd()
    for directory in (here, *here.parents):
        if (directory / ".kiln" / "stack.json").is_file():
            return directory / ".kiln" / "stack.json"
    return Path(".kiln") / "stack.json"


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; {} when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadInput(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise BadInput(f"{what} {path} is not a JSON object")
    return loaded


def saved_login() -> Candidate:
    saved = _read_json(config_path(), "the saved login")
    return Candidate("login", _text(saved.get("url")), _text(saved.get("token")))


def local_stack() -> Candidate:
    stack = _read_json(stack_path(), "the stack file")
    tokens = stack.get("tokens")
    token = tokens.get("user") if isinstance(tokens, dict) else None
    return Candidate("stack", _text(stack.get("api_url")), _text(token))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def save_login(url: str, token: str) -> Path:
    """Write the login, readable by its owner only; returns the file written."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"url": normalized_url(url), "token": token}, indent=2) + "\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as config_file:
        config_file.write(body)
    path.chmod(0o600)
    return path


def normalized_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"the Kiln URL must start with http:// or https://, not {url!r}")
    return url


def resolve(url_flag: str | None, token_flag: str | None) -> Connection:
    """The URL and the token, each from the first source that has it (the module's doc)."""
    candidates = [
        Candidate("flag", url_flag, token_flag),
        Candidate("env", os.environ.get(URL_ENV) or None, os.environ.get(TOKEN_ENV) or None),
        saved_login(),
        local_stack(),
    ]
    url = next(((c.url, c.source) for c in candidates if c.url), None)
    if url is None:
        raise BadInput(
            "no Kiln URL: run `kiln login --url URL --token TOKEN`, set KILN_URL, "
            f"or run `make up` so that {stack_path()} exists"
        )
    token = next(((c.token, c.source) for c in candidates if c.token), (None, None))
    return Connection(normalized_url(url[0]), token[0], url[1], token[1])
