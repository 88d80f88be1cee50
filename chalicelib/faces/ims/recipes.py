"""IMS recipes: /recipes, plus Kiln's presigned archive upload."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.ims import recipes
from chalicelib.domain.ims.lifecycle import RECIPE
from chalicelib.faces.ims import views
from chalicelib.faces.ims.lifecycle_routes import add_lifecycle_routes
from chalicelib.faces.ims.routing import ims_route

bp = Blueprint(__name__)
add_lifecycle_routes(bp, "recipes", "recipe_id", RECIPE, views.recipe)


@ims_route(bp, "/recipes", ["GET"])
def list_recipes(principal: Principal, _body: Any) -> list[dict[str, Any]]:
    return [views.recipe(r) for r in recipes.list_for(principal)]


@ims_route(bp, "/recipes", ["POST"], status=201)
def create_recipe(principal: Principal, body: Any) -> dict[str, Any]:
    box = container()
    return views.recipe(recipes.create(principal, body, box.artifacts, box.settings))


@ims_route(bp, "/recipes/{recipe_id}", ["GET"])
def get_recipe(principal: Principal, _body: Any, recipe_id: str) -> dict[str, Any]:
    return views.recipe(recipes.get(principal, recipe_id))


@ims_route(bp, "/recipes/{recipe_id}", ["PATCH"])
def patch_recipe(principal: Principal, body: Any, recipe_id: str) -> dict[str, Any]:
    box = container()
    return views.recipe(recipes.patch(principal, recipe_id, body, box.artifacts, box.settings))


@ims_route(bp, "/recipes/{recipe_id}/upload", ["POST"])
def recipe_upload_url(principal: Principal, _body: Any, recipe_id: str) -> dict[str, Any]:
    return recipes.upload_url(principal, recipe_id, container().artifacts)
