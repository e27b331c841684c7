"""Routes: pull (filled in by its own module)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
