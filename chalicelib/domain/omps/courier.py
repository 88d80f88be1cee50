"""Validation and bundling of a push's manifests with operator-courier (omps-behaviour.md §7),
in process: ``build_and_verify`` with ``repository=<repo>``, then the tar.gz its push would
send, which Kiln's own registry stores instead of POSTing it to Quay.

The bundle is what operator-courier's ``build_verify_and_push`` builds: a gzip tar of one
directory ``<repo>-<8 random chars>`` holding, for a flat bundle, ``bundle.yaml`` (the verified
bundle dumped block-style), for a nested one, a copy of the whole tree; either way without the
files its push leaves out (``art.yaml``, ``image-references``).

Errors, each ``Failed to push manifest: <operator-courier's message>``: a bad bundle is 400
``PackageValidationError`` with its validation info (``{}`` for the structural ones), bad YAML
the same with ``{}``, anything else operator-courier raises 500 ``QuayCourierError``."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import shutil
import tarfile
import tempfile
from typing import Any

import yaml
from operatorcourier import api as courier_api
from operatorcourier.errors import OpCourierBadBundle, OpCourierBadYaml
from operatorcourier.push import BLACK_LIST

from chalicelib.domain.omps.errors import PackageValidationError, QuayCourierError

#: operator-courier's validator prints every warning and error to stderr through a handler of
#: its own; Kiln returns them in ``validation_info`` and keeps them in the push record instead
logging.getLogger("operatorcourier.validate").disabled = True


@dataclasses.dataclass(frozen=True)
class Bundle:
    """The tar.gz to publish and operator-courier's ``{"errors", "warnings"}``."""

    blob: bytes
    validation: dict[str, Any]
    nested: bool


def build_bundle(source_dir: str, repo: str) -> Bundle:
    """Validate ``source_dir`` for repository ``repo`` and build its bundle."""
    try:
        verified = courier_api.build_and_verify(source_dir=source_dir, repository=repo)
        validation = verified.validation_dict
        bundle = None if verified.nested else verified.bundle
    except OpCourierBadBundle as exc:
        raise PackageValidationError(_message(exc), exc.validation_info) from exc
    except OpCourierBadYaml as exc:
        raise PackageValidationError(_message(exc)) from exc
    except Exception as exc:  # upstream: every other courier failure is QuayCourierError
        raise QuayCourierError(_message(exc)) from exc
    return Bundle(_tarball(source_dir, repo, bundle), validation, bundle is None)


def _message(exc: Exception) -> str:
    return f"Failed to push manifest: {exc}"


def _tarball(source_dir: str, repo: str, bundle: Any) -> bytes:
    """The gzip tar of ``<repo>-<random>/`` holding ``bundle.yaml`` (flat: ``bundle`` given)
    or a copy of ``source_dir`` (nested: ``bundle`` None)."""
    with tempfile.TemporaryDirectory() as scratch:
        bundle_dir = tempfile.mkdtemp(prefix=f"{repo}-", dir=scratch)
        if bundle is None:
            shutil.copytree(source_dir, bundle_dir, dirs_exist_ok=True, symlinks=True)
            _drop_black_listed(bundle_dir)
        else:
            with open(os.path.join(bundle_dir, "bundle.yaml"), "w", encoding="utf-8") as out:
                yaml.dump(bundle, out, default_flow_style=False)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(bundle_dir, os.path.basename(bundle_dir))
        return buffer.getvalue()


def _drop_black_listed(root: str) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name in BLACK_LIST:
                os.remove(os.path.join(folder, name))
