"""OMPS face: service routes (docs/design-omps.md)."""

from __future__ import annotations

from chalice import Blueprint

bp = Blueprint(__name__)
