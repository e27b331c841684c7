"""Client for llama.cpp's server API, as the engine inside a runner process serves it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from nexus.errors import BadRequest, NexusError, RunnerFailed
from nexus.runner.link import EngineLink, LinkError
from nexus.runner.prompt_gate import PromptGate, prompt_bound

#: An embedding: the engine's 32-bit floats.
Vector = npt.NDArray[np.float32]


class EngineUnreachable(RunnerFailed):
    """Raised when the runner's engine cannot be reached (it died or is dying)."""


#: Longest the engine may take to render a model's Jinja chat template: this many seconds, and
#: ``TEMPLATE_ITEM_SECONDS`` more per message and tool. A template can loop over the messages as
#: deeply as it likes; past its deadline the render is given up (and the engine still rendering
#: must be stopped: nothing else ends it). Real templates take 0.07-0.15 ms per message.
TEMPLATE_DEADLINE = 10.0
TEMPLATE_ITEM_SECONDS = 0.001


def template_deadline(messages: int, tools: int = 0) -> float:
    """Seconds the engine may take to render a template for so many messages and tools."""
    return TEMPLATE_DEADLINE + TEMPLATE_ITEM_SECONDS * (messages + tools)


class TemplateTimedOut(RunnerFailed):
    """Raised when the engine takes longer than ``TEMPLATE_DEADLINE`` to render a template."""


class ContextExceeded(BadRequest):
    """Raised when the engine refuses a prompt longer than a slot's context."""

    code = "context_length_exceeded"

    def __init__(self, message: str, n_prompt_tokens: int, n_ctx: int) -> None:
        super().__init__(message)
        self.n_prompt_tokens = n_prompt_tokens
        self.n_ctx = n_ctx


def _engine_error(status: int, body: bytes) -> NexusError:
    try:
        err = json.loads(body)["error"]
        message = str(err.get("message", "")) or body.decode("utf-8", "replace")
        kind = err.get("type", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, kind, err = body.decode("utf-8", "replace"), "", {}
    if "json.exception" in message or not message.strip():
        # the engine's own parser wording (or nothing) says nothing useful to a client
        what = "could not parse the request" if message.strip() else "gave no reason"
        message = f"the model runner refused the request (HTTP {status}): it {what}"
    if kind == "exceed_context_size_error":
        return ContextExceeded(
            message, int(err.get("n_prompt_tokens", 0)), int(err.get("n_ctx", 0))
        )
    if 400 <= status < 500:
        return BadRequest(message)
    return RunnerFailed(message)


class EngineClient:
    def __init__(self, address: str, gate: PromptGate | None = None) -> None:
        """``address`` is the engine's: ``unix:///path/to.sock`` or ``http://host:port``;
        ``gate`` lets generations' prompts in turn by turn (none: all at once)."""
        self.address = address
        self.gate = gate
        self._link = EngineLink(address)
        self._special: tuple[str, str] | None = None

    async def aclose(self) -> None:
        await self._link.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            reply = await self._link.request(method, path, body)
            data = await reply.read()
        except LinkError as exc:
            raise EngineUnreachable(f"runner unreachable: {exc}") from exc
        if reply.status >= 400:
            raise _engine_error(reply.status, data)
        return orjson.loads(data)

    async def health(self) -> bool:
        try:
            async with asyncio.timeout(10.0):
                reply = await self._link.request("GET", "/health")
                await reply.read()
        except (LinkError, TimeoutError):
            return False
        return reply.status == 200

    async def props(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/props")
        return result

    async def special_tokens(self) -> tuple[str, str]:
        """The model's BOS and EOS token texts, as its chat template sees them (asked once)."""
        if self._special is None:
            props = await self.props()
            self._special = (str(props.get("bos_token") or ""), str(props.get("eos_token") or ""))
        return self._special

    async def tokenize(
        self, text: str, *, special: bool = True, add_special: bool = False
    ) -> list[int]:
        """``add_special`` adds the tokens the model's vocabulary puts around a whole input (BOS;
        CLS and SEP for BERT-style encoders), as the engine does for a prompt given as text."""
        data = await self._call(
            "POST",
            "/tokenize",
            {"content": text, "add_special": add_special, "parse_special": special},
        )
        return list(data["tokens"])

    async def detokenize(self, tokens: list[int]) -> str:
        data = await self._call("POST", "/detokenize", {"tokens": tokens})
        return str(data["content"])

    async def apply_template(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        template_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """The prompt the model's Jinja template renders; ``template_kwargs`` are extra
        variables for it (``enable_thinking``)."""
        body: dict[str, Any] = {"messages": messages}
        if tools:
            body["tools"] = tools
        if template_kwargs:
            body["chat_template_kwargs"] = template_kwargs
        deadline = template_deadline(len(messages), len(tools or ()))
        try:
            async with asyncio.timeout(deadline):
                data = await self._call("POST", "/apply-template", body)
        except TimeoutError:
            raise TemplateTimedOut(
                f"the model's chat template did not render within {deadline:g} s"
            ) from None
        return str(data["prompt"])

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/completion", {**body, "stream": False})
        return result

    async def completion_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Yield the engine's stream events; the last one has ``stop: true`` and ``timings``.

        Closing the iterator early closes the connection, which makes the engine stop generating
        and free its slot. With a gate, the request waits for its prompt's turn, and holds it
        until its first event (never while suspended at a ``yield``).
        """
        gate, size = self.gate, None
        if gate is not None:
            size = await self._prompt_size(gate, body.get("prompt"))
            await gate.enter(size)
        try:
            try:
                reply = await self._link.request("POST", "/completion", {**body, "stream": True})
            except LinkError as exc:
                raise EngineUnreachable(f"runner unreachable: {exc}") from exc
            pieces = reply.iter_body()
            try:
                if reply.status >= 400:
                    raise _engine_error(reply.status, await reply.read())
                pending = b""
                final: dict[str, Any] | None = None
                async for data in pieces:
                    if final is not None:
                        # the body is read to its end before the last event goes out, so the
                        # connection returns to the pool and the next request needs no new one
                        continue
                    pending += data
                    start = 0
                    while (end := pending.find(b"\n", start)) >= 0:
                        line = pending[start:end]
                        start = end + 1
                        if line.startswith(b"data: "):
                            event = orjson.loads(line[6:])  # the engine's JSON, per token
                            if gate is not None:  # the prompt is done: the next one's turn
                                gate.leave(size)
                                gate = None
                            if event.get("stop"):
                                final = event
                                break
                            yield event
                        elif line.startswith(b"error: "):
                            raise _engine_error(500, line[7:])
                    pending = pending[start:]
                if final is not None:
                    yield final
            except LinkError as exc:
                raise EngineUnreachable(f"runner connection lost: {exc}") from exc
            finally:
                await pieces.aclose()
        finally:
            if gate is not None:
                gate.leave(size)

    async def _prompt_size(self, gate: PromptGate, prompt: Any) -> int | None:
        """The prompt's size for ``gate``: its upper bound where that lets it in at once, else
        (a text under contention) its exact count of tokens."""
        bound = prompt_bound(prompt)
        if not isinstance(prompt, str) or gate.fits(bound) or not gate.worth_counting(bound):
            return bound
        return len(await self.tokenize(prompt, add_special=True))

    async def embeddings(self, inputs: list[list[int]], *, normalize: bool) -> list[Vector]:
        """One vector per input, as the engine computes them: 32-bit floats (a quarter of the
        memory of Python's floats, and printed as Ollama prints them)."""
        data = await self._call(
            "POST", "/embeddings", {"input": inputs, "embd_normalize": 2 if normalize else -1}
        )
        ordered = sorted(data, key=lambda item: item["index"])
        return [np.asarray(item["embedding"][0], dtype=np.float32) for item in ordered]
