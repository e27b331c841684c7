"""Request types of Ollama's native API (``/api/*``).

Responses are built as plain dicts on the hot path; tests validate them against Ollama's
OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from nexus.config import parse_duration
from nexus.errors import BadRequest

Think = bool | Literal["high", "medium", "low", "max"]

#: The Ollama release whose API Nexus implements (native ``logprobs`` came with it), reported as
#: ``version`` by ``/api/version`` so that clients gating features on Ollama's version see it.
OLLAMA_API_VERSION = "0.12.11"


class _Request(BaseModel):
    """Unknown fields are ignored, as Ollama's JSON decoding ignores them."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def parse_keep_alive(value: Any) -> float | None:
    """``keep_alive`` as Ollama reads it: a number of seconds or a Go duration string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("Unsupported type: 'bool'")
    if isinstance(value, int | float):
        return float("inf") if value < 0 else float(value)
    if isinstance(value, str):
        return parse_duration(value, bare_seconds=False)
    raise ValueError(f"Unsupported type: '{type(value).__name__}'")


#: ``keep_alive`` in any request: seconds as a number, or a Go duration string.
KeepAlive = Annotated[float | None, BeforeValidator(parse_keep_alive)]


class _Inference(_Request):
    model: str = ""
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    stream: bool = True
    format: str | dict[str, Any] | None = None
    think: Think | None = None
    logprobs: bool = False
    top_logprobs: int = 0

    @field_validator("format")
    @classmethod
    def _format(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(value, str) and value not in ("", "json"):
            raise ValueError(f'invalid format: "{value}"; expected "json" or a JSON schema')
        return value or None

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs(cls, value: int) -> int:
        if not 0 <= value <= 20:
            raise ValueError("top_logprobs must be between 0 and 20")
        return value


class GenerateRequest(_Inference):
    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None
    truncate: bool = True


class ToolCallFunction(_Request):
    index: int | None = None
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCall(_Request):
    id: str | None = None
    function: ToolCallFunction


class Message(_Request):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class ChatRequest(_Inference):
    messages: list[Message] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    truncate: bool = True


class EmbedRequest(_Request):
    model: str = ""
    input: str | list[str] | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise BadRequest("invalid input type")  # Ollama's exact text, not a field error

    truncate: bool = True
    dimensions: int | None = Field(default=None, gt=0)
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class EmbeddingsRequest(_Request):
    model: str = ""
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class ShowRequest(_Request):
    model: str = Field(default="", validation_alias="model")
    name: str = ""
    verbose: bool = False


class CopyRequest(_Request):
    source: str
    destination: str


class DeleteRequest(_Request):
    model: str = ""
    name: str = ""
