"""Request bodies parsed strictly enough to give clear 400s instead of framework errors."""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from nexus.errors import BadRequest
from nexus.jsonio import without_lone_surrogates
from nexus.jsonshape import MAX_DEPTH, ShapeError, check_shape

T = TypeVar("T", bound=BaseModel)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


@functools.cache
def _boolean_keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(
        info.alias or name
        for name, info in model.model_fields.items()
        if info.annotation in (bool, bool | None)
    )


def check_booleans(model: type[BaseModel], data: dict[str, Any]) -> None:
    """Boolean fields take JSON ``true``/``false`` only, as Ollama's decoder does (pydantic
    would also read ``"yes"`` or ``1`` as true)."""
    for key in _boolean_keys(model):
        value = data.get(key)
        if value is not None and not isinstance(value, bool):
            raise BadRequest(
                f"{key} must be true or false, not {json.dumps(value)[:40]}", param=key
            )


async def parse_body(request: Request, model: type[T], *, allow_empty: bool = False) -> T:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return model.model_validate({})
        raise BadRequest("missing request body")
    try:
        check_shape(raw)  # before parsing: what parsing would build is bounded
    except ShapeError as exc:
        raise BadRequest(str(exc)) from None
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadRequest(f"invalid JSON: nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    data = without_lone_surrogates(raw, data)
    check_booleans(model, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        param = str(errors[0]["loc"][0]) if errors and errors[0].get("loc") else None
        raise BadRequest(describe_validation_error(exc), param=param) from exc
