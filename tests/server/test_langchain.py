"""LangChain's ChatOpenAI pointed at the server's /v1 API answers invoke and stream."""

from __future__ import annotations

import httpx
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from tests.support import DEFAULT_MODEL, ServerProcess


def chat_model(server: ServerProcess) -> ChatOpenAI:
    return ChatOpenAI(
        model=DEFAULT_MODEL,
        base_url=f"{server.url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        temperature=0,
        seed=3,
        max_tokens=12,  # type: ignore[call-arg]
        max_retries=0,
        http_client=httpx.Client(trust_env=False, timeout=120),
    )


def test_invoke(server: ServerProcess) -> None:
    reply = chat_model(server).invoke(
        [SystemMessage(content="Answer briefly."), HumanMessage(content="Say hello.")]
    )
    assert isinstance(reply, AIMessage)
    assert isinstance(reply.content, str) and reply.content
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] > 0


def test_stream_matches_invoke(server: ServerProcess) -> None:
    model = chat_model(server)
    whole = model.invoke("Name a fruit.")
    pieces = [chunk.content for chunk in model.stream("Name a fruit.")]
    assert len(pieces) > 1
    assert "".join(str(p) for p in pieces) == whole.content
