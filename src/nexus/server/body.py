"""Request bodies parsed strictly enough to give clear 400s instead of framework errors."""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from nexus.errors import BadRequest

T = TypeVar("T", bound=BaseModel)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


async def parse_body(request: Request, model: type[T], *, allow_empty: bool = False) -> T:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return model.model_validate({})
        raise BadRequest("missing request body")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        param = str(errors[0]["loc"][0]) if errors and errors[0].get("loc") else None
        raise BadRequest(describe_validation_error(exc), param=param) from exc
