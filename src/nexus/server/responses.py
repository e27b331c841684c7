"""Routes for the responses API under /v1 (filled in by its own module)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
