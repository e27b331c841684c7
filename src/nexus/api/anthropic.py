"""Request types of Anthropic's Messages API (``/v1/messages``).

Only the envelope is typed here; content blocks stay plain dicts and are checked while they are
translated (``nexus.compat.anthropic``), so a bad block gets a message that names it. Unknown
fields are ignored, and Ollama's ``keep_alive`` and ``options`` are accepted beside Anthropic's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nexus.api.ollama import KeepAlive


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MessageParam(_Base):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class ToolParam(_Base):
    name: str = Field(min_length=1)
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoiceParam(_Base):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingParam(_Base):
    type: str
    budget_tokens: int | None = None


class OutputConfigParam(_Base):
    effort: str | None = None


class _Conversation(_Base):
    model: str = Field(min_length=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingParam | None = None
    output_config: OutputConfigParam | None = None
    #: Nexus/Ollama extras accepted beside Anthropic's fields.
    keep_alive: KeepAlive = None
    options: dict[str, Any] | None = None


class MessagesRequest(_Conversation):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool = False
    metadata: dict[str, Any] | None = None


class CountTokensRequest(_Conversation):
    """What ``/v1/messages/count_tokens`` reads: the conversation without sampling fields."""
