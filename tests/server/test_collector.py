"""The server freezes what its start-up built, so a full collection does not walk it again."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from nexus.config import Settings
from nexus.net.collector import freeze_startup_objects
from nexus.server.app import create_app


def test_freezing_moves_live_objects_out_of_the_collectors_sight() -> None:
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 1000
        frozen = gc.get_freeze_count()
        assert len(gc.get_objects()) < frozen
    finally:
        gc.unfreeze()


def test_the_server_freezes_once_started(tmp_path: Path) -> None:
    settings = Settings.from_env({"OLLAMA_MODELS": str(tmp_path), "OLLAMA_HOST": "127.0.0.1:0"})
    app = create_app(settings)
    gc.unfreeze()

    async def started() -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    try:
        assert asyncio.run(started()) > 1000
    finally:
        gc.unfreeze()
