"""Image files named in a prompt, attached for models that can see them."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from nexus.cli.console import Consoles
from nexus.cli.errors import CLIError

MAX_BYTES = 100 * 1024 * 1024
# An absolute or ./-relative path (spaces may be backslash-escaped) ending in an image suffix.
_PATH = re.compile(r"(?:[a-zA-Z]:)?(?:\./|/|\\)(?:\\ |[^\s])+?\.(?i:jpg|jpeg|png|webp)\b")
_UNESCAPE = re.compile(r"\\(.)")


def _looks_like_image(head: bytes) -> bool:
    return (
        head.startswith(b"\xff\xd8\xff")
        or head.startswith(b"\x89PNG\r\n\x1a\n")
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    )


def attach_images(text: str, ui: Consoles) -> tuple[str, list[str]]:
    """``text`` without the image paths it names, and those images as base64."""
    images: list[str] = []
    for match in _PATH.findall(text):
        path = Path(_UNESCAPE.sub(r"\1", match))
        if not path.is_file():
            continue
        data = path.read_bytes()
        if len(data) > MAX_BYTES:
            raise CLIError(f"{path}: file size exceeds maximum limit (100MB)")
        if not _looks_like_image(data[:16]):
            raise CLIError(f"{path}: not a JPEG, PNG or WebP image")
        ui.note(f"Added image '{path}'")
        for form in (f"'{path}'", f"'{match}'", match):
            text = text.replace(form, "")
        images.append(base64.b64encode(data).decode("ascii"))
    return text.strip(), images
