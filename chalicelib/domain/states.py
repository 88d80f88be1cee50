"""Allowed status transitions, as tables, checked in one place."""

from __future__ import annotations

from chalicelib.errors import Invalid

JOB_STATUSES = (
    "creating",
    "fetching_image",
    "fetching_recipe",
    "waiting_for_repos",
    "building_image",
    "waiting_on_user",
    "uploading",
    "registering",
    "error",
    "success",
)
JOB_TERMINAL = frozenset({"success", "error"})

_ACTIVE_AFTER: dict[str, frozenset[str]] = {
    "creating": frozenset(
        {
            "fetching_image",
            "fetching_recipe",
            "waiting_for_repos",
            "building_image",
            "waiting_on_user",
        }
    ),
    "fetching_image": frozenset({"waiting_on_user", "building_image"}),
    "fetching_recipe": frozenset({"waiting_for_repos", "building_image"}),
    "waiting_for_repos": frozenset({"building_image"}),
    "building_image": frozenset({"waiting_on_user", "uploading"}),
    "uploading": frozenset({"registering"}),
    "registering": frozenset(),
    "waiting_on_user": frozenset({"building_image"}),
}

#: status -> the statuses it may move to. Any unfinished job may end; an ended job never moves.
JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    **{status: nxt | JOB_TERMINAL for status, nxt in _ACTIVE_AFTER.items()},
    "success": frozenset(),
    "error": frozenset(),
}

#: a recipe's archive: awaiting_upload -> ready | invalid; a new upload re-checks it.
RECIPE_ARCHIVE_TRANSITIONS: dict[str, frozenset[str]] = {
    "awaiting_upload": frozenset({"ready", "invalid"}),
    "invalid": frozenset({"ready", "invalid"}),
    "ready": frozenset({"ready", "invalid"}),
}


def can_move(table: dict[str, frozenset[str]], current: str, new: str) -> bool:
    return new in table.get(current, frozenset())


def check_move(table: dict[str, frozenset[str]], what: str, current: str, new: str) -> None:
    if not can_move(table, current, new):
        raise Invalid(
            f"{what} cannot move from '{current}' to '{new}'",
            {"status": [f"'{current}' may move to: {sorted(table.get(current, ())) or 'nothing'}"]},
        )


#: a soft-deletable record (recipe, image, public key). Each operation first records itself as
#: ``pending`` with the transitional status, then changes S3, then finishes; an interrupted
#: operation is finished by the next call on the record or by the cleanup schedule.
#: "purging" ends with the record gone.
RECORD_TRANSITIONS: dict[str, frozenset[str]] = {
    "live": frozenset({"deleting", "purging"}),
    "deleting": frozenset({"deleted"}),
    "deleted": frozenset({"undeleting", "purging"}),
    "undeleting": frozenset({"live"}),
    "purging": frozenset(),
}

#: a Glance image (Glance's own table): data upload saves, /stage uploads, import imports.
#: A failed upload or import goes back to queued; deleting removes the record.
GLANCE_IMAGE_TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"saving", "uploading", "importing", "active", "deleted"}),
    "saving": frozenset({"active", "killed", "deleted", "queued"}),
    "uploading": frozenset({"importing", "queued", "deleted"}),
    "importing": frozenset({"active", "deleted", "queued"}),
    "active": frozenset({"deleted", "deactivated"}),
    "deactivated": frozenset({"active", "deleted"}),
    "killed": frozenset({"deleted"}),
    "deleted": frozenset(),
}
