"""The resolved plan of a kiln-debian build: what the build cache's key is the digest of
(builders/build_cache.py, docs/build-cache.md).

Resolving reads the recipe (after templating), hashes every file of the recipe archive,
fetches the Release file of the mirror's suite and of each extra repository, and asks the
build tools their versions. A Release file lists the sha256 of every Packages index of its
suite, so its own sha256 pins the package set apt resolves from the requested packages: equal
plans give equal images. Nothing is built and no package is downloaded.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from builders.backends import debian_build_info as build_info
from builders.backends import debian_mirror as mirrors
from builders.backends import debian_recipe as recipes
from builders.backends import disk_image as disks
from builders.backends.base import BuildContext, BuildError

PLAN_FORMAT = "kiln-resolved-plan/1"
_DATE = re.compile(rb"^Date: *(.+?)\s*$", re.MULTILINE)


def requested_packages(recipe: recipes.Recipe, debarch: str) -> list[str]:
    """The packages mmdebstrap is asked to include (``--include``), in its order."""
    packages = list(recipe.packages)
    if recipe.kernel:
        packages += [p for p in recipes.kernel_packages(debarch) if p not in packages]
    if recipe.disk is not None and disks.BOOT_PACKAGE not in packages:
        packages.append(disks.BOOT_PACKAGE)
    return packages


def release_epoch(release: bytes) -> int:
    """The ``Date`` of a Release file, as epoch seconds."""
    found = _DATE.search(release)
    try:
        if found is None:
            raise ValueError("no Date field")
        return int(email.utils.parsedate_to_datetime(found.group(1).decode()).timestamp())
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BuildError(
            "source_date_epoch 0 takes the suite's Release date, but the mirror's Release file "
            f"has no readable Date field ({exc})"
        ) from None


def effective_epoch(ctx: BuildContext, release: bytes) -> int:
    """The job's source_date_epoch; 0 means the date of the suite's Release file (composer
    images: equal requests against an unchanged mirror build equal images)."""
    return ctx.source_date_epoch or release_epoch(release)


def resolve(
    ctx: BuildContext, environ: Mapping[str, str], etc_apt: Path, tool_env: Mapping[str, str]
) -> dict[str, Any]:
    """The resolved plan (format ``kiln-resolved-plan/1``)."""
    recipe = recipes.load_recipe(ctx.recipe_dir, ctx.template)
    debarch = recipes.debian_arch(ctx.arch)
    mirror = mirrors.resolve_mirror(recipe, environ, etc_apt)
    sources = build_info.fetch_sources(recipe, mirror, ctx)
    tools = list(build_info.BUILD_TOOLS)
    if recipe.disk is not None:
        tools += build_info.DISK_TOOLS
    repositories = build_info.repository_facts(sources)
    return {
        "format": PLAN_FORMAT,
        "backend": "kiln-debian",
        "recipe_type": ctx.recipe_type,
        "arch": ctx.arch,
        "architecture": debarch,
        "source_date_epoch": effective_epoch(ctx, sources.release),
        "recipe": recipes.recipe_document(ctx.recipe_dir, ctx.template),
        "template_dictionary": dict(sorted(ctx.template.items())),
        "inputs": build_info.recipe_inputs(ctx.recipe_dir),
        "mirror": {
            "url": mirror,
            "suite": recipe.suite,
            "components": list(recipe.components),
            "release_sha256": _sha256(sources.release),
        },
        "repositories": repositories,
        "packages": requested_packages(recipe, debarch),
        "tools": build_info.tool_versions(tools, tool_env),
        "outputs": {
            "image_root_archive_name": ctx.image_root_archive_name,
            "kernel_file_name": ctx.kernel_file_name,
            "initrd_file_name": ctx.initrd_file_name,
        },
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
