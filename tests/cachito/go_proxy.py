"""A Go module proxy in a directory, served to ``go`` as ``GOPROXY=file:///...``: the public
proxy is not reachable from build hosts, so the gomod tests publish their own small modules.

    proxy = GoProxy(tmp_path / "proxy")
    proxy.add("example.com/greet", "v1.0.0", {"greet.go": "package greet\\n..."})
    proxy.url                                   # file:///.../proxy
    proxy.go_sum("example.com/greet", "v1.0.0") # the two go.sum lines of that version

Each version is written as the GOPROXY protocol has it (``go help goproxy``):
``<escaped module>/@v/list``, ``<version>.info``, ``<version>.mod`` and ``<version>.zip``,
whose entries are prefixed ``<module>@<version>/``; upper-case letters in module paths and
versions are escaped as ``!`` + lower case.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path

#: a fixed modification time inside every zip, so a version's zip (and hash) never changes
ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def escape(path: str) -> str:
    """``github.com/Azure/go`` → ``github.com/!azure/go`` (module paths and versions)."""
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in path)


def dirhash(files: dict[str, bytes]) -> str:
    """Go's ``h1:`` hash (golang.org/x/mod/sumdb/dirhash Hash1) of named files."""
    summary = "".join(
        f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files)
    )
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode("utf-8")).digest()).decode()


def go_mod_text(module: str, requires: dict[str, str] | None = None, go: str = "1.21") -> str:
    text = f"module {module}\n\ngo {go}\n"
    if requires:
        text += "\nrequire (\n" + "".join(f"\t{m} {v}\n" for m, v in requires.items()) + ")\n"
    return text


class GoProxy:
    """Modules published into ``root``, a directory ``go`` reads as a ``file://`` proxy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._zips: dict[tuple[str, str], dict[str, bytes]] = {}
        self._mods: dict[tuple[str, str], bytes] = {}

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def version_dir(self, module: str) -> Path:
        return self.root / escape(module) / "@v"

    def add(
        self,
        module: str,
        version: str,
        files: dict[str, str],
        requires: dict[str, str] | None = None,
        time: str = "2024-01-01T00:00:00Z",
    ) -> None:
        """Publish ``module@version`` holding ``files`` (path -> text) and a go.mod requiring
        ``requires`` (module -> version)."""
        mod = go_mod_text(module, requires).encode("utf-8")
        contents = {"go.mod": mod, **{p: t.encode("utf-8") for p, t in files.items()}}
        entries = {f"{module}@{version}/{path}": data for path, data in contents.items()}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(entries):
                archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), entries[name])
        versions = self.version_dir(module)
        versions.mkdir(parents=True, exist_ok=True)
        stem = escape(version)
        (versions / f"{stem}.mod").write_bytes(mod)
        (versions / f"{stem}.zip").write_bytes(buffer.getvalue())
        info = {"Version": version, "Time": time}
        (versions / f"{stem}.info").write_text(json.dumps(info), encoding="utf-8")
        listed = versions / "list"
        known = listed.read_text(encoding="utf-8").split() if listed.exists() else []
        listed.write_text("".join(f"{v}\n" for v in sorted({*known, version})), encoding="utf-8")
        self._zips[(module, version)] = entries
        self._mods[(module, version)] = mod

    def remove(self, module: str, version: str) -> None:
        """Withdraw one version's files (its ``list`` line stays, as on a broken mirror)."""
        stem = escape(version)
        for suffix in (".info", ".mod", ".zip"):
            (self.version_dir(module) / f"{stem}{suffix}").unlink(missing_ok=True)

    def go_sum(self, module: str, version: str) -> str:
        """The go.sum lines of a published version: its zip's and its go.mod's hashes."""
        zip_hash = dirhash(self._zips[(module, version)])
        mod_hash = dirhash({"go.mod": self._mods[(module, version)]})
        return f"{module} {version} {zip_hash}\n{module} {version}/go.mod {mod_hash}\n"
