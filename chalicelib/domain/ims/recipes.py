"""Recipes: records, their archive in S3, and the check that makes an archive usable."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, ObjectMissing, recipe_key
from chalicelib.adapters.models import RecipeModel
from chalicelib.auth import Principal
from chalicelib.config import ARCHES, Settings
from chalicelib.domain.ims import artifact_links
from chalicelib.domain.ims.recipe_archive import ArchiveFacts, inspect_archive
from chalicelib.domain.states import RECIPE_ARCHIVE_TRANSITIONS, can_move
from chalicelib.domain.uploads.archive_safety import ArchiveRejected
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
    """Check the linked archive now; a link the tenant may not use, or to a missing or unsafe
    archive, is refused."""
    key = artifact_links.entitled_key(store, link["path"], recipe.tenant)
    try:
        etag, facts = _inspect(store, key, recipe, settings)
    except ObjectMissing as exc:
        raise Invalid(
            f"link.path {link['path']} does not exist", {"link": ["no such object"]}
        ) from exc
    except ArchiveRejected as exc:
        raise Invalid(f"recipe archive rejected: {exc}", {"link": [str(exc)]}) from exc
    _mark_ready(recipe, store.url(key), etag, facts)


def _inspect(
    store: ArtifactStore, key: str, recipe: RecipeModel, settings: Settings
) -> tuple[str, ArchiveFacts]:
    """(the ETag of the object read, its facts): what is recorded is what was inspected."""
    etag, chunks = store.open(key)
    facts = inspect_archive(
        chunks, recipe.recipe_type, settings.recipe_max_bytes, settings.recipe_max_members
    )
    return etag, facts


def _mark_ready(recipe: RecipeModel, path: str, etag: str, facts: ArchiveFacts) -> None:
    recipe.link = {"path": path, "etag": etag, "type": "s3"}
    recipe.archive_status = "ready"
    recipe.archive_sha256 = facts.sha256
    recipe.archive_size = facts.size
    recipe.archive_reason = None


def archive_uploaded(
    key: str, etag: str, store: ArtifactStore, settings: Settings, sequencer: str = ""
) -> tuple[str, str]:
    """An archive landed at ``key`` (the upload event's object ETag and S3 ``sequencer``):
    check it and record the outcome on its recipe.

    Returns (recipe_id or '', outcome). Exactly once in effect: a repeated event, or one older
    than the upload the recipe already records (by sequencer), changes nothing; an event whose
    object was replaced since is left to the newer object's own event.
    """
    recipe_id = key.split("/")[1] if key.count("/") == 2 else ""
    if key != recipe_key(recipe_id) or not recipe_id:
        return "", "ignored: not a recipe archive key"
    for _attempt in range(5):
        recipe = records.find(RecipeModel, recipe_id)
        if recipe is None:
            return recipe_id, "ignored: no such recipe"
        if sequencer and recipe.archive_sequencer:
            order = compare_sequencers(sequencer, recipe.archive_sequencer)
            if order < 0:
                return recipe_id, "ignored: older than the upload already checked"
            if order == 0:
                return recipe_id, "unchanged: already checked"
        elif recipe.link and recipe.link.get("etag") == etag and recipe.archive_status == "ready":
            return recipe_id, "unchanged: already checked"
        try:
            inspected, facts = _inspect(store, key, recipe, settings)
        except ArchiveRejected as exc:
            inspected, facts, reason = etag, None, str(exc)
        except ObjectMissing:
            return recipe_id, "ignored: the object is gone"
        if etag and inspected != etag:
            return recipe_id, "ignored: the object was replaced since this event"
        new_status = "ready" if facts is not None else "invalid"
        if not can_move(RECIPE_ARCHIVE_TRANSITIONS, recipe.archive_status, new_status):
            return recipe_id, f"unchanged: {recipe.archive_status}"
        if facts is not None:
            _mark_ready(recipe, store.url(key), inspected, facts)
        else:
            recipe.archive_status, recipe.archive_reason = "invalid", reason
        if sequencer:
            recipe.archive_sequencer = sequencer
        try:
            recipe.save()
            return recipe_id, new_status
        except PutError as exc:  # lost a race with another writer: read again
            if not records.lost_race(exc):
                raise
    raise Conflict(f"recipe {recipe_id} kept changing while its archive was checked")


def compare_sequencers(first: str, second: str) -> int:
    """-1, 0 or 1 as S3 orders two events of one key: the hex strings right-padded with zeros
    to one length, then compared."""
    width = max(len(first), len(second))
    a, b = first.upper().ljust(width, "0"), second.upper().ljust(width, "0")
    return (a > b) - (a < b)
