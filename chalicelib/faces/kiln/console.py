"""The web console's files (chalicelib/console/, docs/console.md), served as they are: the
console is static HTML, CSS and JavaScript that calls Kiln's public APIs with the user's token
from the browser. ``GET /console`` and ``/console/`` answer the page (API Gateway drops a
trailing slash), whose ``<base>`` names the console's own path, stage prefix included, so its
relative links work wherever it is mounted; ``GET /console/{name}`` answers one file."""

from __future__ import annotations

import re
from pathlib import Path

from chalice import Blueprint, Response

FILES = Path(__file__).resolve().parents[2] / "console"
INDEX = "index.html"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # one file, never a path
BASE = '<base href="./">'  # the page's placeholder; without one, the tag opens <head>
HEAD = re.compile(r"<head(\s[^>]*)?>", re.I)
#: scripts and styles from the console's own files only; data from Kiln's APIs and wherever
#: they redirect (presigned downloads)
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self' http: https:; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)

bp = Blueprint(__name__)


def _answer(body: str, content_type: str, status: int = 200) -> Response:
    headers: dict[str, str | list[str]] = {
        "Content-Type": content_type,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return Response(body=body, status_code=status, headers=headers)


def _missing(name: str) -> Response:
    return _answer(f"no console file {name!r}\n", "text/plain; charset=utf-8", 404)


@bp.route("/console", methods=["GET"])
def page() -> Response:
    request = bp.current_request
    path = str((request.context or {}).get("path") or "/console")
    base = path[: path.rindex("/console") + len("/console")] + "/"
    html = (FILES / INDEX).read_text(encoding="utf-8")
    tag = f'<base href="{base}">'
    html = html.replace(BASE, tag, 1) if BASE in html else HEAD.sub(rf"\g<0>{tag}", html, 1)
    return _answer(html, TYPES[".html"])


@bp.route("/console/{name}", methods=["GET"])
def console_file(name: str) -> Response:
    if name == INDEX:
        return page()
    suffix = Path(name).suffix
    if not NAME.match(name) or suffix not in TYPES or not (FILES / name).is_file():
        return _missing(name)
    return _answer((FILES / name).read_text(encoding="utf-8"), TYPES[suffix])
