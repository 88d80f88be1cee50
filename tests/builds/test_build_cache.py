"""The content-addressed build cache (docs/build-cache.md), over HTTP and build events, with the
host's own job code building kiln-noop recipes in the test's process (tests/builds/
cache_host.py): a repeated plan is served from the cache, per tenant; ``fresh_build``; records
sharing a set; purge, eviction and orphans."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.adapters.build_cache_models import ArtifactHoldModel, BuildCacheModel
from tests.builds.cache_host import InProcessHost
from tests.conftest import Kiln
from tests.handlers.test_cleanup import scheduled
from tests.ims.helpers import V3, public_key, ready_recipe

CACHE = "build-cache/"


@dataclasses.dataclass
class Setup:
    kiln: Kiln
    host: InProcessHost
    recipes: dict[str, dict[str, Any]]  # tenant -> its recipe
    keys: dict[str, dict[str, Any]]

    def job(self, tenant: str = "demo", **extra: Any) -> str:
        if tenant not in self.recipes:
            self.recipes[tenant] = ready_recipe(self.kiln, tenant=tenant)
            self.keys[tenant] = public_key(self.kiln, tenant=tenant)
        body = {
            "job_type": "create",
            "artifact_id": self.recipes[tenant]["id"],
            "public_key_id": self.keys[tenant]["id"],
            "image_root_archive_name": "img",
            **extra,
        }
        response = self.kiln.call("POST", f"{V3}/jobs", body, tenant=tenant)
        assert response.status_code == 201, response.json_body
        return str(response.json_body["id"])

    def built(self, tenant: str = "demo", **extra: Any) -> dict[str, Any]:
        """A job made, built by the host, its result delivered: the job as IMS shows it."""
        job_id = self.job(tenant, **extra)
        self.host.build(job_id)
        return self.get_job(job_id, tenant)

    def get_job(self, job_id: str, tenant: str = "demo") -> dict[str, Any]:
        return dict(self.kiln.call("GET", f"{V3}/jobs/{job_id}", tenant=tenant).json_body)

    def manifest(self, image_id: str, tenant: str = "demo") -> dict[str, Any]:
        response = self.kiln.call("GET", f"{V3}/images/{image_id}/manifest", tenant=tenant)
        assert response.status_code == 200, response.json_body
        return dict(response.json_body)

    def artifact_keys(self, image_id: str) -> list[str]:
        """The build's artifacts the image's manifest lists (not the image's own provenance)."""
        bucket = self.kiln.provisioned.bucket
        listed = self.manifest(image_id)["artifacts"]
        keys = [item["link"]["path"].removeprefix(f"s3://{bucket}/") for item in listed]
        return [key for key in keys if key.startswith(CACHE)]

    def purge(self, image_id: str) -> None:
        assert self.kiln.call("DELETE", f"{V3}/images/{image_id}").status_code == 204
        assert self.kiln.call("DELETE", f"{V3}/deleted/images/{image_id}").status_code == 204

    def schedule(self, **settings: Any) -> dict[str, list[str]]:
        if settings:
            self.kiln.configure(**settings)
        response = self.kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(self.kiln))
        return dict(response.payload)


@pytest.fixture
def cache(kiln: Kiln, tmp_path: Path) -> Setup:
    kiln.register_host(recipe_types=("kiln-noop",))
    return Setup(kiln, InProcessHost(kiln, tmp_path), {}, {})


def _downloads(manifest: dict[str, Any]) -> list[bytes]:
    """The bytes of each artifact of the build cache the manifest lists, as a client gets them."""
    found = []
    for item in manifest["artifacts"]:
        if f"/{CACHE}" not in item["link"]["path"]:
            continue
        response = requests.get(item["download_url"], timeout=10)
        assert response.status_code == 200, item
        found.append(response.content)
    return found


def test_an_identical_plan_is_served_from_the_cache(cache: Setup) -> None:
    first = cache.built()
    second_id = cache.job()
    message = cache.host.message(second_id)
    assert (message.cache_prefix, message.use_cache) == ("build-cache/demo/", True)
    cache.host.build(second_id)
    second = cache.get_job(second_id)

    assert (first["timing"]["cache"], second["timing"]["cache"]) == ("miss", "hit")
    assert "building_image" in cache.host.steps[first["id"]]
    assert "building_image" not in cache.host.steps[second_id]  # nothing was built
    assert "build" not in second["timing"]["stages"]
    one, two = first["resultant_image_id"], second["resultant_image_id"]
    assert one != two
    keys = cache.artifact_keys(one)
    assert keys and keys == cache.artifact_keys(two)  # image 2 lists image 1's objects
    assert all(key.startswith(f"{CACHE}demo/") and f"/{first['id']}/" in key for key in keys)
    assert _downloads(cache.manifest(one)) == _downloads(cache.manifest(two))
    log = cache.host.log(second_id)
    assert "resolved build plan" in log and "build cache hit" in log
    (entry,) = BuildCacheModel.scan()  # the test's look at the table
    assert (entry.tenant, entry.source_job, entry.hits) == ("demo", first["id"], 1)
    assert entry.size == sum(item["size"] for item in entry.artifacts) > 0
    holders = {hold.holder for hold in ArtifactHoldModel.query(entry.set_prefix)}
    assert holders == {"entry", f"job:{first['id']}", f"job:{second_id}"}
    document = cache.host.read_json(f"{CACHE}demo/{entry.key}/entry.json")
    assert document["source_job"] == first["id"] and document["set_prefix"] == entry.set_prefix


def test_fresh_build_is_built_and_keeps_its_own_set(cache: Setup) -> None:
    first = cache.built()
    fresh_id = cache.job(fresh_build=True)
    assert cache.host.message(fresh_id).use_cache is False
    cache.host.build(fresh_id)
    fresh = cache.get_job(fresh_id)
    assert fresh["timing"]["cache"] == "miss" and "building_image" in cache.host.steps[fresh_id]
    keys = cache.artifact_keys(fresh["resultant_image_id"])
    assert all(f"/{fresh_id}/" in key for key in keys)  # published anew, not the first's
    (entry,) = BuildCacheModel.scan()
    assert entry.source_job == first["id"]  # the first build's entry stays the entry
    assert [h.holder for h in ArtifactHoldModel.query(keys[0].rsplit("/", 1)[0] + "/")] == [
        f"job:{fresh_id}"
    ]


def test_ims_fresh_build_must_be_a_boolean(cache: Setup) -> None:
    body = {
        "job_type": "create",
        "artifact_id": ready_recipe(cache.kiln)["id"],
        "public_key_id": public_key(cache.kiln)["id"],
        "image_root_archive_name": "img",
        "fresh_build": "yes",
    }
    response = cache.kiln.call("POST", f"{V3}/jobs", body)
    # IMS answers a field of the wrong type as it does enable_debug's: 422, ProblemDetails
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json_body["errors"] == {"fresh_build": ["Not a valid boolean."]}
    assert cache.kiln.call("GET", f"{V3}/jobs").json_body == []


def test_composer_fresh_build_must_be_a_boolean(cache: Setup) -> None:
    from tests.composer.helpers import compose_body, job_ids, post

    cache.kiln.register_host(recipe_types=("kiln-debian",), xname="debian-host")
    refused = post(cache.kiln, compose_body(fresh_build="yes"))
    assert refused.status_code == 400
    assert refused.json_body["kind"] == "Error"  # composer's error body
    assert refused.json_body["details"] == "fresh_build must be a boolean"
    compose_id = post(cache.kiln, compose_body()).json_body["id"]
    (job_id,) = job_ids(cache.kiln, compose_id)
    message = cache.host.message(job_id)
    # composer's kiln-debian images: the suite's Release date, so equal composes can hit
    assert (message.source_date_epoch, message.cache_prefix) == (0, "build-cache/demo/")
    assert message.use_cache is True


def test_another_tenant_never_gets_a_tenants_build(cache: Setup) -> None:
    first = cache.built()
    epoch = cache.host.message(first["id"]).source_date_epoch
    (entry,) = BuildCacheModel.scan()
    theirs = cache.job("other")
    assert cache.host.message(theirs).cache_prefix == "build-cache/other/"
    # the very same plan (the recipe's epoch too), asked by another tenant: a miss
    result = cache.host.build(theirs, source_date_epoch=epoch)
    facts = result["output"]["cache"]
    assert facts["key"] == entry.key and facts["hit"] is False
    assert facts["prefix"] == f"build-cache/other/{entry.key}/{theirs}/"
    assert cache.get_job(theirs, "other")["timing"]["cache"] == "miss"


def test_a_hit_on_another_tenants_set_is_not_recorded(cache: Setup) -> None:
    first = cache.built()
    (entry,) = BuildCacheModel.scan()
    theirs = cache.job("other")
    forged = cache.host.build(theirs, deliver=False)
    forged["output"]["cache"] = {
        "key": entry.key,
        "hit": True,
        "prefix": entry.set_prefix,  # demo's set
        "source_job": first["id"],
    }
    cache.kiln.build_events(forged)
    holders = {hold.holder for hold in ArtifactHoldModel.query(entry.set_prefix)}
    assert f"job:{theirs}" not in holders
    assert BuildCacheModel.get(entry.id).hits == 0


def test_a_replayed_result_changes_nothing(cache: Setup) -> None:
    first_id = cache.job()
    miss = cache.host.build(first_id)
    second_id = cache.job()
    hit = cache.host.build(second_id)
    (before,) = BuildCacheModel.scan()
    holds = sorted(h.holder for h in ArtifactHoldModel.query(before.set_prefix))
    cache.kiln.build_events(miss, hit)
    cache.kiln.build_events(hit)
    (after,) = BuildCacheModel.scan()
    assert (after.hits, after.source_job, after.set_prefix) == (1, first_id, before.set_prefix)
    assert sorted(h.holder for h in ArtifactHoldModel.query(before.set_prefix)) == holds


def test_a_missing_object_turns_a_hit_into_a_miss(cache: Setup) -> None:
    first = cache.built()
    keys = cache.artifact_keys(first["resultant_image_id"])
    cache.host.s3.delete_object(Bucket=cache.kiln.provisioned.bucket, Key=keys[0])
    again = cache.built()
    assert again["timing"]["cache"] == "miss"
    assert "is gone: treated as a miss" in cache.host.log(again["id"])
    (entry,) = BuildCacheModel.scan()  # the rebuilt set replaced the broken one
    assert entry.source_job == again["id"] and f"/{again['id']}/" in entry.set_prefix
    assert cache.built()["timing"]["cache"] == "hit"


def test_images_sharing_a_set_are_deleted_and_purged_apart(cache: Setup) -> None:
    first, second = cache.built(), cache.built()
    one, two = first["resultant_image_id"], second["resultant_image_id"]
    shared = cache.artifact_keys(one)
    s3, bucket = cache.host.s3, cache.kiln.provisioned.bucket

    assert cache.kiln.call("DELETE", f"{V3}/images/{one}").status_code == 204
    for key in shared:  # a soft delete tags only the image's own objects
        assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == []
    undone = cache.kiln.call("PATCH", f"{V3}/deleted/images/{one}", {"operation": "undelete"})
    assert undone.status_code == 204
    cache.purge(one)
    assert cache.host.keys(f"images/{one}/") == []  # its manifest went
    assert len(_downloads(cache.manifest(two))) == len(shared)  # the shared objects did not

    cache.purge(two)
    assert all(cache.host.keys(key) == [key] for key in shared)  # the entry still holds them
    report = cache.schedule(build_cache_max_age_seconds=0, job_stale_seconds=0)
    assert any("evicted, unused too long" in line for line in report["build_cache_evicted"])
    assert [key for key in shared if cache.host.keys(key)] == []  # the last hold went
    assert cache.host.keys(CACHE) == [] and list(BuildCacheModel.scan()) == []
    assert list(ArtifactHoldModel.scan()) == []


def test_eviction_by_age_keeps_objects_a_record_still_holds(cache: Setup) -> None:
    first = cache.built()
    keys = cache.artifact_keys(first["resultant_image_id"])
    cache.kiln.configure(build_cache_max_age_seconds=3600)
    assert cache.schedule()["build_cache_evicted"] == []  # used just now
    report = cache.schedule(build_cache_max_age_seconds=0, job_stale_seconds=0)
    assert len(report["build_cache_evicted"]) == 2  # the entry, then its evicted hold
    assert list(BuildCacheModel.scan()) == []
    assert all(cache.host.keys(key) == [key] for key in keys)  # the image's job holds them
    assert len(_downloads(cache.manifest(first["resultant_image_id"]))) == len(keys)
    assert cache.built()["timing"]["cache"] == "miss"  # no entry any more: built again


def test_eviction_by_size_drops_the_least_recently_used(cache: Setup) -> None:
    older = cache.built()
    newer = cache.built("other")
    entries = {entry.source_job: entry for entry in BuildCacheModel.scan()}
    assert set(entries) == {older["id"], newer["id"]}
    limit = entries[newer["id"]].size  # room for one entry
    report = cache.schedule(build_cache_max_bytes=limit)
    assert report["build_cache_evicted"] == [
        f"entry demo/{entries[older['id']].key}: evicted, cache over its size "
        f"({entries[older['id']].size} bytes)"
    ]
    assert [entry.source_job for entry in BuildCacheModel.scan()] == [newer["id"]]


def test_an_orphaned_set_is_removed_after_the_grace(cache: Setup) -> None:
    job_id = cache.job()
    result = cache.host.build(job_id, deliver=False)  # published, then the job failed
    failure = {"Error": "HostError: the answer was lost", "Cause": ""}
    cache.kiln.build_events(
        {"type": "result", "outcome": "failure", "job_id": job_id, "error": failure}
    )
    prefix = result["output"]["cache"]["prefix"]
    assert cache.host.keys(prefix)
    assert cache.schedule()["build_cache_evicted"] == []  # within the grace
    time.sleep(1.1)
    report = cache.schedule(orphan_grace_seconds=1)
    assert report["build_cache_evicted"] == [f"set {prefix}: no holder, 1 objects deleted"]
    assert cache.host.keys(CACHE) == []
