"""PynamoDB models of the Glance image registry: images and their members.

Every list the Glance face offers reads an index, ordered by ``created_id`` (creation time with
microseconds, then id) so lists page with a marker without reading what came before:
``by_owner`` (a tenant's own images), ``by_listed`` (sparse: only public and community images,
by visibility), ``by_registry`` (every image, for admins) and, on members, ``by_member`` (the
images shared with a tenant). A tenant's list never reads another tenant's private images.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.adapters.sized_model import SizedModel

#: the one partition of ``by_registry``
REGISTRY = "image"
#: the one partition of the sparse ``by_in_flight``: images with data on the way
IN_FLIGHT = "image"
IN_FLIGHT_STATUSES = ("saving", "uploading", "importing")


class ByOwner(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "by_owner"
        projection = AllProjection()

    owner = UnicodeAttribute(hash_key=True)
    created_id = UnicodeAttribute(range_key=True)


class ByListed(GlobalSecondaryIndex[Any]):
    """Sparse: ``listed`` is the visibility of public and community images, absent otherwise."""

    class Meta:
        index_name = "by_listed"
        projection = AllProjection()

    listed = UnicodeAttribute(hash_key=True)
    created_id = UnicodeAttribute(range_key=True)


class ByRegistry(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "by_registry"
        projection = AllProjection()

    registry = UnicodeAttribute(hash_key=True)
    created_id = UnicodeAttribute(range_key=True)


class ByInFlight(GlobalSecondaryIndex[Any]):
    """Sparse: only images saving, uploading or importing; the schedule finds stuck ones."""

    class Meta:
        index_name = "by_in_flight"
        projection = AllProjection()

    in_flight = UnicodeAttribute(hash_key=True)
    created_id = UnicodeAttribute(range_key=True)


class GlanceImageModel(SizedModel):
    """An image record. ``properties`` holds the custom (string) properties."""

    class Meta:
        table_name = "kiln-glance-images"

    by_owner = ByOwner()
    by_listed = ByListed()
    by_registry = ByRegistry()
    by_in_flight = ByInFlight()
    id = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()
    registry = UnicodeAttribute(default=REGISTRY)
    created = UnicodeAttribute()  # ISO 8601 with microseconds
    created_id = UnicodeAttribute()  # created + "#" + id: the order every list index keeps
    updated = UnicodeAttribute()
    listed = UnicodeAttribute(null=True)
    in_flight = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default="queued")  # see domain/states.py GLANCE_IMAGE_TRANSITIONS
    visibility = UnicodeAttribute(default="shared")
    protected = BooleanAttribute(default=False)
    os_hidden = BooleanAttribute(default=False)
    disk_format = UnicodeAttribute(null=True)
    container_format = UnicodeAttribute(null=True)
    min_disk = NumberAttribute(default=0)
    min_ram = NumberAttribute(default=0)
    size = NumberAttribute(null=True)
    virtual_size = NumberAttribute(null=True)
    checksum = UnicodeAttribute(null=True)  # MD5, hex
    os_hash_algo = UnicodeAttribute(null=True)
    os_hash_value = UnicodeAttribute(null=True)
    tags = JSONAttribute(default=list)
    properties = JSONAttribute(default=dict)
    data_key = UnicodeAttribute(null=True)  # the S3 key of the image data once active
    data_owned = BooleanAttribute(default=True)  # False: the data belongs to an IMS/compose build
    staged = JSONAttribute(null=True)  # {"key", "size", "checksum", "sha512"} after /stage
    direct_upload = JSONAttribute(null=True)  # {"key", "upload_id"} of a presigned upload
    import_task = JSONAttribute(null=True)  # {"method", "uri", "started", "error"}
    version = VersionAttribute()


class ByMember(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "by_member"
        projection = AllProjection()

    member_id = UnicodeAttribute(hash_key=True)
    image_created_id = UnicodeAttribute(range_key=True)


class GlanceMemberModel(SizedModel):
    """A tenant an image is shared with, and whether it accepted."""

    class Meta:
        table_name = "kiln-glance-members"

    by_member = ByMember()
    image_id = UnicodeAttribute(hash_key=True)
    member_id = UnicodeAttribute(range_key=True)
    image_created_id = UnicodeAttribute()  # the image's created_id: lists keep image order
    status = UnicodeAttribute(default="pending")
    created = UnicodeAttribute()
    updated = UnicodeAttribute()
    version = VersionAttribute()


GLANCE_MODELS: tuple[type[Model], ...] = (GlanceImageModel, GlanceMemberModel)
