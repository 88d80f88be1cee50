"""Recipes: records, their archive in S3, and the check that makes an archive usable."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, recipe_key
from chalicelib.adapters.models import RecipeModel
from chalicelib.auth import Principal
from chalicelib.config import ARCHES, Settings
from chalicelib.domain.recipe_archive import ArchiveFacts, ArchiveRejected, inspect_archive
from chalicelib.domain.states import RECIPE_ARCHIVE_TRANSITIONS, can_move
from chalicelib.domain.validation import BodyCheck, require_object
from chalicelib.errors import Conflict, Invalid

IMS_RECIPE_TYPES = ("kiwi-ng", "packer")
KILN_RECIPE_TYPES = ("kiln-debian", "kiln-noop")
RECIPE_TYPES = IMS_RECIPE_TYPES + KILN_RECIPE_TYPES
LINUX_DISTRIBUTIONS = ("sles12", "sles15", "centos7", "debian12")
READ_ONLY = ("id", "created", "archive")
KIND = "recipe"


def create(
    principal: Principal, body: Any, store: ArtifactStore, settings: Settings
) -> RecipeModel:
    check = BodyCheck(
        require_object(body),
        known=(
            "name",
            "recipe_type",
            "linux_distribution",
            "link",
            "template_dictionary",
            "arch",
            "require_dkms",
        ),
        read_only=READ_ONLY,
    )
    recipe = RecipeModel()
    recipe.name = check.string("name", required=True, min_len=1)
    recipe.recipe_type = check.choice("recipe_type", RECIPE_TYPES, required=True)
    recipe.linux_distribution = check.choice(
        "linux_distribution", LINUX_DISTRIBUTIONS, required=True
    )
    recipe.arch = check.choice("arch", ARCHES) or "x86_64"
    recipe.require_dkms = bool(check.boolean("require_dkms"))
    recipe.template_dictionary = check.key_values("template_dictionary") or []
    link = check.link()
    check.done()
    records.stamp(recipe, principal.tenant, KIND)
    recipe.archive_status = "awaiting_upload"
    if link is not None:
        _adopt_link(recipe, link, store, settings)
    return records.insert(recipe)


def patch(
    principal: Principal, recipe_id: str, body: Any, store: ArtifactStore, settings: Settings
) -> RecipeModel:
    recipe = get(principal, recipe_id)
    check = BodyCheck(
        require_object(body), known=("link", "arch", "require_dkms", "template_dictionary")
    )
    arch = check.choice("arch", ARCHES)
    require_dkms = check.boolean("require_dkms")
    template = check.key_values("template_dictionary")
    link = check.link()
    check.done()
    if arch is not None:
        recipe.arch = arch
    if require_dkms is not None:
        recipe.require_dkms = require_dkms
    if template is not None:
        recipe.template_dictionary = template
    if link is not None:
        _adopt_link(recipe, link, store, settings)
    return records.save_or_conflict(recipe, f"recipe {recipe_id}")


def get(principal: Principal, recipe_id: str) -> RecipeModel:
    return records.get_visible(RecipeModel, recipe_id, principal, "recipe", KIND)


def list_for(principal: Principal) -> list[RecipeModel]:
    return records.list_visible(RecipeModel, principal, KIND)


def upload_url(principal: Principal, recipe_id: str, store: ArtifactStore) -> dict[str, Any]:
    """A presigned PUT for the recipe's archive; the upload event makes the recipe usable."""
    recipe = get(principal, recipe_id)
    key = recipe_key(recipe.id)
    return {
        "upload_url": store.presign_put(key),
        "method": "PUT",
        "expires_in": store.presign_seconds,
        "link": {"path": store.url(key), "type": "s3"},
    }


def _adopt_link(
    recipe: RecipeModel, link: dict[str, str], store: ArtifactStore, settings: Settings
) -> None:
    """Check the linked archive now; a link to a missing or unsafe archive is refused."""
    key = store.key_of(link["path"])
    head = store.head(key)
    if head is None:
        raise Invalid(f"link.path {link['path']} does not exist", {"link": ["no such object"]})
    try:
        facts = _inspect(store, key, recipe, settings)
    except ArchiveRejected as exc:
        raise Invalid(f"recipe archive rejected: {exc}", {"link": [str(exc)]}) from exc
    _mark_ready(
        recipe, store.url(key), str(head.get("ETag", "")).strip('"'), facts.sha256, facts.size
    )


def _inspect(
    store: ArtifactStore, key: str, recipe: RecipeModel, settings: Settings
) -> ArchiveFacts:
    return inspect_archive(
        store.stream(key),
        recipe.recipe_type,
        settings.recipe_max_bytes,
        settings.recipe_max_members,
    )


def _mark_ready(recipe: RecipeModel, path: str, etag: str, sha256: str, size: int) -> None:
    recipe.link = {"path": path, "etag": etag, "type": "s3"}
    recipe.archive_status = "ready"
    recipe.archive_sha256 = sha256
    recipe.archive_size = size
    recipe.archive_reason = None


def archive_uploaded(
    key: str, etag: str, store: ArtifactStore, settings: Settings
) -> tuple[str, str]:
    """An archive landed at ``key``: check it and record the outcome on its recipe.

    Returns (recipe_id or '', outcome). Safe to call again for the same upload.
    """
    recipe_id = key.split("/")[1] if key.count("/") == 2 else ""
    if key != recipe_key(recipe_id) or not recipe_id:
        return "", "ignored: not a recipe archive key"
    for _attempt in range(5):
        recipe = records.find(RecipeModel, recipe_id)
        if recipe is None:
            return recipe_id, "ignored: no such recipe"
        if recipe.link and recipe.link.get("etag") == etag and recipe.archive_status == "ready":
            return recipe_id, "unchanged: already checked"
        try:
            facts = _inspect(store, key, recipe, settings)
            new_status, reason = "ready", None
        except ArchiveRejected as exc:
            new_status, reason = "invalid", str(exc)
        if not can_move(RECIPE_ARCHIVE_TRANSITIONS, recipe.archive_status, new_status):
            return recipe_id, f"unchanged: {recipe.archive_status}"
        if new_status == "ready":
            _mark_ready(recipe, store.url(key), etag, facts.sha256, facts.size)
        else:
            recipe.archive_status, recipe.archive_reason = "invalid", reason
        try:
            recipe.save()
            return recipe_id, new_status
        except PutError as exc:  # lost a race with another writer: read again
            if not records.lost_race(exc):
                raise
    raise Conflict(f"recipe {recipe_id} kept changing while its archive was checked")
