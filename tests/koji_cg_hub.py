"""A Koji hub stand-in for content generators, on loopback: what Kiln's Koji target meets.

It speaks the hub's XML-RPC as the koji library calls it: password ``login`` with header
sessions, ``rawUpload`` chunks and ``checkUpload``, ``CGInitBuild``, ``CGImport``,
``CGRefundBuild``, ``getBuild``; and, for koji-osbuild's builder task, ``getBuildTarget``,
``getBuildConfig`` and ``getNextRelease`` of one target, ``kiln-candidate``.

It checks an import as Koji's content-generator rules say
(docs.pagure.org/koji/content_generator_metadata): metadata version 0; the build's name,
version, release, source and times, matching the reserved build and its token; buildroots
with host, content generator (one the user is granted), container, tools and components;
outputs that name a buildroot, with unique file names, the types ``log`` or ``image`` (with
its ``extra.image`` and the build's ``typeinfo.image``), and a size and checksum that match
the file uploaded to the import's directory. A broken rule is a fault, as Koji's GenericError.

In tests: ``with KojiCGHub(work_dir) as hub: ... hub.imports``. By hand:
``.venv/bin/python -m tests.koji_cg_hub --port 8021`` (docs/koji.md)."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import threading
import uuid
import xmlrpc.client
import zlib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.omps.koji_hub import Server as LoopbackServer

BUILDING, COMPLETE, FAILED, CANCELED = 0, 1, 3, 4
OUTPUT_TYPES = ("log", "image")
COMPONENT_TYPES = ("rpm", "file", "kojifile")
CHECKSUMS = {"md5": hashlib.md5, "sha256": hashlib.sha256}


class Refused(Exception):
    """A call the hub refuses: a Koji GenericError (fault 1000) with this text."""


def _need(condition: object, text: str) -> None:
    if not condition:
        raise Refused(text)


class KojiCGHub(LoopbackServer):
    def __init__(
        self,
        work_dir: Path,
        user: str = "kiln",
        password: str = "kiln-secret",
        content_generator: str = "osbuild",
        port: int = 0,
    ) -> None:
        self.work_dir = work_dir
        self.users = {user: password}
        self.grants = {(user, content_generator)}
        self.builds: dict[int, dict[str, Any]] = {}
        self.imports: list[dict[str, Any]] = []  # each accepted CGImport: metadata and files
        self.refused: list[str] = []  # what each refused call was told
        self.calls: list[str] = []
        self.faults: dict[str, str] = {}  # method -> text: make a method fault
        self.say: Any = lambda line: None  # told of each reservation, refund and import
        # what koji-osbuild's builder task reads of the hub: its build target and tag arches
        self.targets = {
            "kiln-candidate": {
                "name": "kiln-candidate",
                "build_tag": 1,
                "build_tag_name": "kiln-build",
                "dest_tag": 2,
                "dest_tag_name": "kiln-candidate",
            }
        }
        self.tag_arches = "x86_64 aarch64"
        self.task_files: set[str] = set()
        self._sessions: dict[str, str] = {}  # "id:key" -> user
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                owner._answer(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True

    @property
    def hub_url(self) -> str:
        return self.url + "/kojihub"

    def hub_setting(self) -> str:
        """``KILN_KOJI_HUBS`` for this hub."""
        (user, password), (_, cg) = next(iter(self.users.items())), next(iter(self.grants))
        return json.dumps(
            {self.hub_url: {"user": user, "password": password, "content_generator": cg}}
        )

    # -- the wire --------------------------------------------------------------------------------
    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        user = self._sessions.get(
            f"{handler.headers.get('Koji-Session-Id')}:{handler.headers.get('Koji-Session-Key')}"
        )
        try:
            if handler.headers.get("Content-Type") == "application/octet-stream":
                query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
                result = self._raw_upload(user, query, body)
            else:
                params, method = xmlrpc.client.loads(body, use_builtin_types=True)
                args: list[Any] = list(params)
                kwargs: dict[str, Any] = {}
                if args and isinstance(args[-1], dict) and args[-1].pop("__starstar", False):
                    kwargs = args.pop()
                with self._lock:
                    self.calls.append(str(method))
                if method in self.faults:
                    raise Refused(self.faults[str(method)])
                result = self._call(user, str(method), args, kwargs)
            reply = xmlrpc.client.dumps((result,), methodresponse=True, allow_none=True)
        except Refused as exc:
            with self._lock:
                self.refused.append(str(exc))
            reply = xmlrpc.client.dumps(xmlrpc.client.Fault(1000, str(exc)), allow_none=True)
        data = reply.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/xml")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _call(self, user: str | None, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if method == "getAPIVersion":
            return 1
        if method == "login":
            _need(self.users.get(args[0]) == args[1], "login failed: wrong user or password")
            session_id, key = str(len(self._sessions) + 1), uuid.uuid4().hex
            self._sessions[f"{session_id}:{key}"] = args[0]
            return {"session-id": int(session_id), "session-key": key, "header-auth": True}
        if method == "getBuild":
            return self._find(args[0])
        if method == "getBuildTarget":
            return self.targets.get(args[0])
        if method == "getBuildConfig":
            return {"id": args[0], "name": "kiln-build", "arches": self.tag_arches}
        if method == "getNextRelease":
            return "1"
        _need(user, f"{method}: you must be logged in")
        assert user is not None
        if method == "logout":
            return None
        if method == "checkUpload":
            path = self._path(args[0], args[1])
            return {"size": path.stat().st_size, "hexdigest": ""} if path.exists() else None
        if method == "CGInitBuild":
            return self._init(user, args[0], args[1])
        if method == "CGRefundBuild":
            return self._refund(user, *args, **kwargs)
        if method == "CGImport":
            return self._import(user, *args, **kwargs)
        raise Refused(f"Invalid method: {method}")

    def _path(self, directory: str, name: str) -> Path:
        parts = PurePosixPath(directory).parts + (name,)
        _need(
            not PurePosixPath(directory).is_absolute() and ".." not in parts and "/" not in name,
            f"invalid upload path {directory}/{name}",
        )
        return self.work_dir.joinpath(*parts)

    def _raw_upload(self, user: str | None, query: dict[str, str], chunk: bytes) -> Any:
        _need(user, "you must be logged in to upload")
        path = self._path(query["filepath"], query["filename"])
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, path.open("r+b" if path.exists() else "wb") as f:
            f.seek(int(query["offset"]))
            f.write(chunk)
        task_file = f"{query['filepath']}/{query['filename']}"
        if query["filepath"].startswith("tasks/") and task_file not in self.task_files:
            self.task_files.add(task_file)  # what a builder task attached (said once)
            self.say(f"task file {task_file}")
        return {"size": len(chunk), "hexdigest": f"{zlib.adler32(chunk) & 0xFFFFFFFF:08x}"}

    # -- builds ----------------------------------------------------------------------------------
    def _find(self, ref: Any) -> dict[str, Any] | None:
        for build in self.builds.values():
            if ref in (build["id"], build["nvr"]):
                return {k: v for k, v in build.items() if k != "token"}
        return None

    def _init(self, user: str, cg: str, data: dict[str, Any]) -> dict[str, Any]:
        _need((user, cg) in self.grants, f"User {user} has no access to content generator {cg}")
        nvr = f"{data.get('name')}-{data.get('version')}-{data.get('release')}"
        _need(all(isinstance(data.get(k), str) for k in ("name", "version", "release")), "bad NVR")
        _need(self._find(nvr) is None, f"Build already exists: {nvr}")
        with self._lock:
            build_id = len(self.builds) + 1
            token = uuid.uuid4().hex
            self.builds[build_id] = {
                "id": build_id,
                "build_id": build_id,
                "nvr": nvr,
                **{k: data[k] for k in ("name", "version", "release")},
                "state": BUILDING,
                "cg_name": cg,
                "token": token,
                "extra": None,
            }
        self.say(f"reserved build {build_id}: {nvr} (content generator {cg})")
        return {"build_id": build_id, "token": token}

    def _reserved(self, build_id: int, token: str) -> dict[str, Any]:
        build = self.builds.get(build_id)
        _need(build is not None, f"No such build: {build_id}")
        assert build is not None
        _need(build["token"] == token, f"Invalid token for build {build_id}")
        _need(build["state"] == BUILDING, f"Build {build_id} is not in the BUILDING state")
        return build

    def _refund(self, user: str, cg: str, build_id: int, token: str, state: int = FAILED) -> None:
        _need((user, cg) in self.grants, f"User {user} has no access to content generator {cg}")
        build = self._reserved(build_id, token)
        _need(build["cg_name"] == cg, "Build was reserved by another content generator")
        _need(state in (FAILED, CANCELED), f"Invalid refund state {state}")
        build["state"] = state
        self.say(f"refunded build {build_id}: {build['nvr']}")

    def _import(
        self, user: str, metadata: Any, directory: str, token: str | None = None
    ) -> dict[str, Any]:
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                raise Refused("metadata is not valid JSON") from None
        _need(isinstance(metadata, dict), "metadata must be a JSON object")
        _need(metadata.get("metadata_version") == 0, "No such metadata version")
        build = metadata.get("build")
        _need(isinstance(build, dict), "Metadata has no build")
        for key in ("name", "version", "release", "source", "start_time", "end_time"):
            _need(build.get(key) not in (None, ""), f"Build metadata lacks {key}")
        _need(token, "CGImport of a reserved build needs its token")
        reserved = self._reserved(int(build.get("build_id") or 0), str(token))
        nvr = f"{build['name']}-{build['version']}-{build['release']}"
        _need(nvr == reserved["nvr"], f"Build NVR {nvr} does not match reserved {reserved['nvr']}")
        roots = self._check_buildroots(user, metadata.get("buildroots"), reserved["cg_name"])
        files = self._check_outputs(metadata.get("output"), roots, build, directory)
        reserved.update(state=COMPLETE, extra=build.get("extra"))
        with self._lock:
            self.imports.append({"build_id": reserved["id"], "metadata": metadata, "files": files})
        listed = ", ".join(f"{name} ({len(data)} bytes)" for name, data in sorted(files.items()))
        self.say(f"imported build {reserved['id']}: {nvr}: {listed}")
        return self._find(reserved["id"]) or {}

    def _check_buildroots(self, user: str, roots: Any, reserved_cg: str) -> set[int]:
        _need(isinstance(roots, list) and roots, "Metadata has no buildroots")
        ids: set[int] = set()
        for root in roots:
            _need(isinstance(root, dict), "A buildroot must be an object")
            _need(isinstance(root.get("id"), int) and root["id"] not in ids, "Buildroot ids unique")
            ids.add(root["id"])
            for key, fields in (
                ("host", ("os", "arch")),
                ("content_generator", ("name", "version")),
                ("container", ("type", "arch")),
            ):
                part = root.get(key)
                _need(
                    isinstance(part, dict) and all(isinstance(part.get(f), str) for f in fields),
                    f"Buildroot {root['id']}: {key} needs {', '.join(fields)}",
                )
            cg = root["content_generator"]["name"]
            _need((user, cg) in self.grants, f"User {user} has no access to content generator {cg}")
            _need(cg == reserved_cg, f"Buildroot {root['id']}: build was reserved by {reserved_cg}")
            tools, components = root.get("tools"), root.get("components")
            _need(isinstance(tools, list), f"Buildroot {root['id']}: tools must be a list")
            _need(
                all(isinstance(t, dict) and {"name", "version"} <= set(t) for t in tools),
                f"Buildroot {root['id']}: each tool has a name and version",
            )
            _need(isinstance(components, list), f"Buildroot {root['id']}: components is a list")
            _need(
                all(isinstance(c, dict) and c.get("type") in COMPONENT_TYPES for c in components),
                f"Buildroot {root['id']}: unknown component type",
            )
        return ids

    def _check_outputs(
        self, outputs: Any, roots: set[int], build: dict[str, Any], directory: str
    ) -> dict[str, bytes]:
        _need(isinstance(outputs, list) and outputs, "Metadata has no outputs")
        files: dict[str, bytes] = {}
        typeinfo = (build.get("extra") or {}).get("typeinfo") or {}
        for out in outputs:
            _need(isinstance(out, dict), "An output must be an object")
            name = out.get("filename")
            _need(isinstance(name, str) and name and "/" not in name, f"Bad filename {name!r}")
            _need(name not in files, f"Duplicate output filename {name}")
            _need(out.get("buildroot_id") in roots, f"{name}: no such buildroot")
            _need(isinstance(out.get("arch"), str), f"{name}: arch required")
            _need(out.get("type") in OUTPUT_TYPES, f"{name}: unsupported type {out.get('type')}")
            if out["type"] == "image":
                _need(isinstance((out.get("extra") or {}).get("image"), dict), f"{name}: no image")
                _need(isinstance(typeinfo.get("image"), dict), "Build has no typeinfo for image")
            hashing = CHECKSUMS.get(out.get("checksum_type", ""))
            _need(hashing is not None, f"{name}: unsupported checksum type")
            assert hashing is not None
            path = self._path(directory, name)
            _need(path.is_file(), f"Missing output file: {directory}/{name}")
            data = path.read_bytes()
            _need(out.get("filesize") == len(data), f"{name}: size {len(data)} != filesize")
            _need(hashing(data).hexdigest() == out.get("checksum"), f"{name}: checksum mismatch")
            files[name] = data
        return files


def main() -> None:
    parser = argparse.ArgumentParser(description="A Koji hub stand-in for content generators.")
    parser.add_argument("--port", type=int, default=8021)
    parser.add_argument("--user", default="kiln")
    parser.add_argument("--password", default="kiln-secret")
    parser.add_argument("--content-generator", default="osbuild")
    parser.add_argument("--work-dir", default=".kiln/koji-hub")
    args = parser.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    hub = KojiCGHub(work, args.user, args.password, args.content_generator, args.port)
    hub.say = lambda line: print(line, flush=True)
    print(f"Koji hub stand-in at {hub.hub_url}\nKILN_KOJI_HUBS='{hub.hub_setting()}'", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        hub.server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
