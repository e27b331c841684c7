"""Request type of OpenAI's Responses API (``POST /v1/responses``).

Input items, tools and formats stay plain dicts here: their many variants are checked where
they are translated (``nexus.compat.responses``), which can name the offending field clearly.
Unknown fields are ignored and ``null`` means unset, as OpenAI treats them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from nexus.api.openai import _Request


class ResponsesRequest(_Request):
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    truncation: Literal["auto", "disabled"] | None = None
    stream: bool | None = None
    metadata: dict[str, str] | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    store: bool | None = None
    background: bool | None = None
    user: str | None = None
