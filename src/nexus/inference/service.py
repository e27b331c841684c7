"""Generation and embedding on top of the scheduler: what the native routes call."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from nexus.api.ollama import ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest
from nexus.config import Settings
from nexus.errors import BadRequest, ContextOverflow, RunnerFailed, UnsupportedCapability
from nexus.inference.embedding import EmbedTally, embed_windows, shortened
from nexus.inference.grammar import apply_constraint
from nexus.inference.long_text import first_tokens, last_tokens, surely_longer
from nexus.inference.models import Model, ModelCatalog
from nexus.inference.prompts import PromptBuilder, RenderedPrompt, engine_prompt
from nexus.inference.schemas import check_schema, check_tools
from nexus.inference.thinking import default_think, split_thinking, staged, thinking_parser
from nexus.inference.toolcalls import parse_call, tool_parser_for
from nexus.options import DEFAULTS as OPTION_DEFAULTS
from nexus.options import (
    check_load_options,
    merge_options,
    split_options,
    to_engine_params,
    validate_request_options,
)
from nexus.runner.client import (
    ContextExceeded,
    EngineClient,
    EngineUnreachable,
    TemplateTimedOut,
    Vector,
)
from nexus.runner.spec import RunnerSpec, machine_cpus
from nexus.scheduler import Lease, Scheduler
from nexus.store.gguf_meta import kv_cache_bytes
from nexus.streams import aclose, prepend

log = logging.getLogger(__name__)

AUTO_PARALLEL = 4
AUTO_CONTEXT_CAP = 8192
#: Ollama's least context for a model with a multimodal projector.
VISION_MIN_CONTEXT = 2048
Chunk = dict[str, Any]


_stamp: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def now_iso() -> str:
    """UTC now as Ollama writes ``created_at`` (microseconds): the date and time of day are
    formatted once a second, since every streamed chunk carries one."""
    global _stamp
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    stamp = _stamp
    if stamp[0] != second:
        stamp = _stamp = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{stamp[1]}.{nanos // 1000:06d}Z"


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


@dataclass
class Outcome:
    """What a generation reports beside its chunks, for APIs that need more than Ollama's."""

    stop_word: str = ""
    truncated: bool = False


@dataclass
class Stats:
    """Counters for the final chunk; durations in nanoseconds as Ollama reports them."""

    started: float
    load_duration: float = 0.0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0

    def take_timings(self, event: dict[str, Any]) -> None:
        timings = event.get("timings") or {}
        self.prompt_eval_count = int(event.get("tokens_evaluated", timings.get("prompt_n", 0)))
        self.prompt_eval_duration = int(timings.get("prompt_ms", 0.0) * 1e6)
        self.eval_count = int(timings.get("predicted_n", event.get("tokens_predicted", 0)))
        self.eval_duration = int(timings.get("predicted_ms", 0.0) * 1e6)

    def fields(self) -> dict[str, int]:
        return {
            "total_duration": int((time.monotonic() - self.started) * 1e9),
            "load_duration": int(self.load_duration * 1e9),
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_duration,
        }


@dataclass
class Usage:
    """What one HTTP request used, for metrics: set up per request, filled in by the service.

    ``model`` is the stored model's name (only models that exist get one); times are
    ``time.perf_counter()`` readings; token counts are the ones the responses report.
    """

    started: float
    model: str = ""
    first_token: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


#: The current request's ``Usage``, when something (the metrics middleware) set one up.
request_usage: ContextVar[Usage | None] = ContextVar("nexus_request_usage", default=None)


def _used_model(model: Model) -> None:
    usage = request_usage.get()
    if usage is not None and not usage.model:
        usage.model = model.display_name


def _used_tokens(prompt: int, completion: int) -> None:
    usage = request_usage.get()
    if usage is not None:
        usage.prompt_tokens += prompt
        usage.completion_tokens += completion


def done_reason(event: dict[str, Any]) -> str:
    return "length" if event.get("stop_type") == "limit" else "stop"


class InferenceService:
    def __init__(self, settings: Settings, catalog: ModelCatalog, scheduler: Scheduler) -> None:
        self.settings = settings
        self.catalog = catalog
        self.scheduler = scheduler
        #: Automatic slot counts, decided once per (weights, context): memory read after a load
        #: (which the KV cache itself took) must not flip the decision and force a reload.
        self._auto_parallel: dict[tuple[str, int], int] = {}

    # ---- runner selection -------------------------------------------------------------

    def context_length(self, model: Model, options: dict[str, Any]) -> int:
        trained = model.gguf.context_length or AUTO_CONTEXT_CAP
        wanted = options.get("num_ctx") or self.settings.context_length
        num_ctx = int(wanted) if wanted else min(trained, AUTO_CONTEXT_CAP)
        if model.projectors:
            num_ctx = max(num_ctx, VISION_MIN_CONTEXT)  # room for the image embeddings
        return max(4, min(num_ctx, trained))

    def runner_spec(self, model: Model, options: dict[str, Any]) -> RunnerSpec:
        load, _ = split_options(options)
        num_ctx = self.context_length(model, load)
        parallel = self.settings.num_parallel or self._automatic_parallel(model, num_ctx)
        return RunnerSpec(
            model_path=str(model.model_path),
            num_ctx=num_ctx,
            num_parallel=parallel,
            num_batch=int(load.get("num_batch") or 512),
            num_gpu=int(load["num_gpu"]) if load.get("num_gpu") is not None else -1,
            main_gpu=int(load.get("main_gpu") or 0),
            # a Modelfile's value too: never more threads than the machine has CPUs
            num_thread=min(int(load.get("num_thread") or 0), machine_cpus()),
            use_mmap=bool(load.get("use_mmap", True)),
            flash_attention=self.settings.flash_attention,
            kv_cache_type=self.settings.kv_cache_type,
            adapters=tuple(str(p) for p in model.adapters),
            projectors=tuple(str(p) for p in model.projectors),
            mean_pooling=model.gguf.pooling_type is None,
        )

    def _automatic_parallel(self, model: Model, num_ctx: int) -> int:
        """4 slots where memory holds their KV cache beside the weights, else 1."""
        key = (str(model.model_path), num_ctx)
        parallel = self._auto_parallel.get(key)
        if parallel is None:
            need = kv_cache_bytes(model.gguf, num_ctx * AUTO_PARALLEL, self.settings.kv_cache_type)
            fits = need + model.weights_size < _available_memory() * 0.8
            parallel = self._auto_parallel[key] = AUTO_PARALLEL if fits else 1
        return parallel

    def options_for(self, model: Model, request_options: dict[str, Any] | None) -> dict[str, Any]:
        """Ollama's defaults, under the model's parameters, under the request's options."""
        requested = validate_request_options(request_options or {})
        self._check_load_bounds(model, requested)
        return merge_options(OPTION_DEFAULTS, model.params, requested)

    def _check_load_bounds(self, model: Model, requested: dict[str, Any]) -> None:
        """A request's load options within the model's context and the machine's CPUs and
        memory: 400 naming the option, never a runner that cannot serve."""
        trained = model.gguf.context_length or AUTO_CONTEXT_CAP
        check_load_options(
            requested,
            context_limit=trained,
            batch_limit=max(512, trained),
            cpus=machine_cpus(),
        )
        num_ctx = int(requested.get("num_ctx") or 0)
        if num_ctx:
            need = model.weights_size + kv_cache_bytes(
                model.gguf, num_ctx, self.settings.kv_cache_type
            )
            available = _available_memory()
            if need > available:
                raise BadRequest(
                    f'option "num_ctx" {num_ctx} needs {need / 2**30:.1f} GiB of memory, '
                    f"{available / 2**30:.1f} GiB are available",
                    param="num_ctx",
                )

    async def lease(
        self,
        model: Model,
        options: dict[str, Any],
        keep_alive: float | None,
        *,
        embedding: bool = False,
    ) -> tuple[Lease, RunnerSpec]:
        spec = self.runner_spec(model, options)
        if embedding:
            spec = self._embedding_spec(spec)
        info = {"model": model, "size": self._runner_size(model, spec)}
        lease = await self.scheduler.acquire(
            spec, keep_alive=keep_alive, info=info, generating=not embedding
        )
        return lease, spec

    def _embedding_spec(self, spec: RunnerSpec) -> RunnerSpec:
        """Embeddings use the model's runner while it is not generating, else a runner of their
        own (kept once loaded): llama.cpp's server never batches an embedding with
        generations, so on a generating runner it would wait until every generation ends.

        That runner computes beside the generating one on the same cores, so it gets half the
        threads: two engines each with a thread per core wait on each other's preempted
        threads (measured on 2 cores: 14 tokens/s left of 154 while both ran, against 67 with
        one thread for the second engine)."""
        own = replace(spec, embeddings_only=True, num_thread=max(1, spec.threads // 2))
        if self.scheduler.has(own) or self.scheduler.generating(spec):
            return own
        return spec

    def _runner_size(self, model: Model, spec: RunnerSpec) -> int:
        kv = kv_cache_bytes(model.gguf, spec.num_ctx * spec.num_parallel, spec.kv_cache_type)
        return model.weights_size + kv

    async def load_or_unload(
        self, model: Model, options: dict[str, Any], keep_alive: float | None
    ) -> str:
        """The empty-request path: load (or with ``keep_alive: 0`` unload) and say which."""
        if keep_alive == 0:
            spec = self.runner_spec(model, options)
            await self.scheduler.unload(spec.model_path)
            return "unload"
        lease, _ = await self.lease(model, options, keep_alive)
        lease.release()
        return "load"

    # ---- generate ---------------------------------------------------------------------

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Chunk]:
        stats = Stats(time.monotonic())
        model = await self.catalog.get(req.model)
        _used_model(model)
        if "completion" not in model.capabilities:
            raise UnsupportedCapability(f'"{req.model}" does not support generate')
        if req.raw and (req.template or req.system or req.context):
            raise BadRequest("raw mode does not support template, system, or context")
        self._check_common(model, req.think, bool(req.images))
        if isinstance(req.format, dict):
            await check_schema(req.format, "format")
        if not req.raw:
            req = req.model_copy(update={"think": default_think(model, req.think)})
        if req.suffix and "insert" not in model.capabilities and not req.template:
            raise UnsupportedCapability(f"{model.name.full()} does not support insert")
        options = self.options_for(model, req.options)
        base = {"model": req.model, "created_at": ""}
        if not req.prompt and not req.suffix and not req.context:
            reason = await self.load_or_unload(model, options, req.keep_alive)
            yield {
                **base,
                "created_at": now_iso(),
                "response": "",
                "done": True,
                "done_reason": reason,
            }
            return
        lease, spec = await self.lease(model, options, req.keep_alive)
        async with lease:
            stats.load_duration = lease.load_duration
            client = _client(lease)
            builder = PromptBuilder(client, self.catalog)
            rendered = await builder.generate_prompt(model, req)
            body = self._engine_body(options, req.format, req.logprobs, req.top_logprobs)
            body["return_tokens"] = True
            # A prompt that cannot pass the context goes as text (the engine tokenizes it, BOS
            # where the model wants one), so no tokenizing round trip comes before the first
            # token. Tokens are needed first only to continue a context from an earlier reply,
            # or to truncate a prompt that may be too long (no token is shorter than a byte);
            # a non-raw reply's own ``context`` is tokenized after, as Ollama's is.
            tokens: list[int] | None = None
            truncated = False
            if not rendered.images and (req.context or _may_overflow(rendered.text, spec)):
                tokens, truncated = await self._fit_tokens(client, rendered, req, options, spec)
            body["prompt"] = tokens if tokens is not None else engine_prompt(rendered)
            thinker = (
                None if req.raw else thinking_parser(model, req.template, rendered, req.think, body)
            )
            events = staged(lambda b: self._stream(lease, b), body, thinker)
            try:
                first = await anext(events)
            except ContextExceeded as exc:
                if not req.truncate or tokens is not None or rendered.images:
                    raise _too_long(exc.n_prompt_tokens, spec.num_ctx) from exc
                tokens, truncated = await self._fit_tokens(client, rendered, req, options, spec)
                body["prompt"] = tokens
                events = staged(lambda b: self._stream(lease, b), body, thinker)
                first = await anext(events)
            generated: list[int] = []
            async for event in prepend(first, events):
                thought, text = split_thinking(thinker, event)
                if not event.get("stop"):
                    generated.extend(event.get("tokens") or ())
                    chunk: Chunk = {
                        **base,
                        "created_at": now_iso(),
                        "response": text,
                        "done": False,
                    }
                    if thought:
                        chunk["thinking"] = thought
                    if req.logprobs:
                        chunk["logprobs"] = _logprobs(event)
                    yield chunk
                    continue
                generated.extend(event.get("tokens") or ())
                stats.take_timings(event)
                if not req.raw and tokens is None:
                    tokens = await client.tokenize(rendered.text, add_special=True)
                if tokens is not None:
                    stats.prompt_eval_count = len(tokens)
                final: Chunk = {
                    **base,
                    "created_at": now_iso(),
                    "response": text,
                    "done": True,
                    "done_reason": done_reason(event),
                }
                if thought:
                    final["thinking"] = thought
                if not req.raw and tokens is not None:
                    final["context"] = tokens + generated
                final.update(stats.fields())
                if truncated:
                    final["truncated"] = True
                _used_tokens(stats.prompt_eval_count, stats.eval_count)
                yield final

    async def _fit_tokens(
        self,
        client: EngineClient,
        rendered: RenderedPrompt,
        req: GenerateRequest,
        options: dict[str, Any],
        spec: RunnerSpec,
    ) -> tuple[list[int], bool]:
        """The prompt's tokens after the request's ``context``, and whether they were cut to
        the context length (the first ``num_keep`` kept, as Ollama does)."""
        keep = min(int(options.get("num_keep", 4)), spec.num_ctx // 2)
        context = list(req.context or [])
        if surely_longer(rendered.text, spec.num_ctx):
            # only its start and end can be kept: they are all that is tokenized
            if not req.truncate:
                raise _too_long(None, spec.num_ctx)
            head, _ = await first_tokens(client, rendered.text, keep, add_special=not context)
            tail = await last_tokens(client, rendered.text, spec.num_ctx - 1 - keep)
            log.warning(
                "generate for %s: prompt of %d characters truncated to the context of %d",
                req.model,
                len(rendered.text),
                spec.num_ctx,
            )
            return (context + head)[:keep] + tail, True
        # BOS (where the model wants one) starts a fresh prompt; a context already has it
        text_tokens = await client.tokenize(rendered.text, add_special=not req.context)
        tokens = context + text_tokens
        if len(tokens) <= spec.num_ctx - 1:
            return tokens, False
        if not req.truncate:
            raise _too_long(len(tokens), spec.num_ctx)
        drop = len(tokens) - (spec.num_ctx - 1)
        log.warning(
            "generate for %s: prompt of %d tokens truncated to the context of %d",
            req.model,
            len(tokens),
            spec.num_ctx,
        )
        return tokens[:keep] + tokens[keep + drop :], True

    # ---- chat -------------------------------------------------------------------------

    async def chat(
        self,
        req: ChatRequest,
        *,
        tool_choice: str | None = None,
        outcome: Outcome | None = None,
    ) -> AsyncIterator[Chunk]:
        """Native chat chunks. ``tool_choice`` (used by the OpenAI-style APIs) is ``None`` or
        ``"auto"`` (the model decides), ``"none"``, ``"required"`` or a tool's name: the last two
        constrain the output to a call of one of the tools."""
        stats = Stats(time.monotonic())
        outcome = outcome if outcome is not None else Outcome()
        model = await self.catalog.get(req.model)
        _used_model(model)
        if "completion" not in model.capabilities:
            raise UnsupportedCapability(f'"{req.model}" does not support chat')
        has_images = any(m.images for m in req.messages)
        self._check_common(model, req.think, has_images)
        if isinstance(req.format, dict):
            await check_schema(req.format, "format")
        await check_tools(req.tools)
        think = default_think(model, req.think)
        options = self.options_for(model, req.options)
        tools = None if tool_choice == "none" else (req.tools or None)
        forced = _forced_tools(tools, tool_choice)
        base = {"model": req.model, "created_at": ""}
        if not req.messages:
            reason = await self.load_or_unload(model, options, req.keep_alive)
            yield {
                **base,
                "created_at": now_iso(),
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": reason,
            }
            return
        lease, spec = await self.lease(model, options, req.keep_alive)
        async with lease:
            stats.load_duration = lease.load_duration
            client = _client(lease)
            builder = PromptBuilder(client, self.catalog)
            messages = builder.chat_messages(model, req)
            rendered = await self._rendered(
                lease, builder.chat_prompt(model, messages, tools, think)
            )
            body = self._engine_body(options, req.format, req.logprobs, req.top_logprobs)
            apply_constraint(body, forced, "tools")
            body["prompt"] = engine_prompt(rendered)
            thinker = thinking_parser(model, None, rendered, think, body)
            events = staged(lambda b: self._stream(lease, b), body, thinker)
            try:
                first = await anext(events)
            except ContextExceeded as exc:
                if not req.truncate:
                    raise _too_long(exc.n_prompt_tokens, spec.num_ctx, "messages") from exc
                rendered = await self._rendered(
                    lease, builder.fit_chat(model, messages, tools, think, spec.num_ctx)
                )
                outcome.truncated = True
                log.warning(
                    "chat for %s: %d oldest messages dropped to fit the context of %d tokens",
                    req.model,
                    rendered.dropped,
                    spec.num_ctx,
                )
                body["prompt"] = engine_prompt(rendered)
                events = staged(lambda b: self._stream(lease, b), body, thinker)
                first = await anext(events)
            parser = tool_parser_for(model) if tools and forced is None else None
            held: list[str] = []
            async for event in prepend(first, events):
                thought, text = split_thinking(thinker, event)
                calls: list[dict[str, Any]] = []
                if forced is not None:
                    held.append(text)
                    text = ""
                elif parser is not None:
                    text, calls = parser.feed(text)
                if not event.get("stop"):
                    if text or calls or thought or req.logprobs:
                        chunk = _chat_chunk(base, text, calls, done=False, thinking=thought)
                        if req.logprobs:
                            chunk["logprobs"] = _logprobs(event)
                        yield chunk
                    continue
                if parser is not None:
                    rest, more = parser.finish()
                    text += rest
                    calls += more
                if forced is not None:
                    call = parse_call("".join(held), 0)
                    if call is not None:
                        calls.append(call)
                    else:
                        text = "".join(held)
                stats.take_timings(event)
                outcome.stop_word = str(event.get("stopping_word") or "")
                final = _chat_chunk(base, text, calls, done=True, thinking=thought)
                if req.logprobs:
                    final["logprobs"] = _logprobs(event)
                final["done_reason"] = done_reason(event)
                final.update(stats.fields())
                if outcome.truncated:
                    final["truncated"] = True
                _used_tokens(stats.prompt_eval_count, stats.eval_count)
                yield final

    # ---- embeddings -------------------------------------------------------------------

    async def embed(self, req: EmbedRequest, tally: EmbedTally) -> AsyncIterator[list[Vector]]:
        """``/api/embed``'s vectors, a window at a time (none for an empty input)."""
        if req.input is None:
            inputs: list[str | list[int]] = []
        elif isinstance(req.input, str):
            inputs = [req.input] if req.input else []
        else:
            inputs = list(req.input)
        windows = self.embed_inputs(
            req.model,
            inputs,
            truncate=req.truncate,
            dimensions=req.dimensions,
            options=req.options,
            keep_alive=req.keep_alive,
            tally=tally,
        )
        try:
            async for vectors in windows:
                yield vectors
        finally:
            await aclose(windows)  # its runner slot, at once when the client leaves

    async def embeddings(self, req: EmbeddingsRequest) -> dict[str, Any]:
        """The legacy ``/api/embeddings``: one prompt, its vector not normalised."""
        if not req.prompt:
            # the model is still loaded (or its keep_alive applied), as Ollama does
            async for _ in self.embed_inputs(
                req.model, [], truncate=True, options=req.options, keep_alive=req.keep_alive
            ):
                pass
            return {"embedding": []}
        windows = self.embed_inputs(
            req.model,
            [req.prompt],
            truncate=True,
            options=req.options,
            keep_alive=req.keep_alive,
            normalize=False,
        )
        vectors = [v async for window in windows for v in window]
        # Ollama's legacy endpoint widens the engine's 32-bit floats to 64 bits
        return {"embedding": vectors[0].astype(np.float64).tolist()}

    async def embed_inputs(
        self,
        model_name: str,
        inputs: list[str | list[int]],
        *,
        truncate: bool,
        dimensions: int | None = None,
        options: dict[str, Any] | None,
        keep_alive: float | None,
        tally: EmbedTally | None = None,
        normalize: bool = True,
    ) -> AsyncIterator[list[Vector]]:
        """Vectors for texts or token lists, a window at a time as the engine computes them
        (normalised unless told not to; cut to ``dimensions``); ``tally`` counts the tokens."""
        tally = tally if tally is not None else EmbedTally(time.monotonic())
        model = await self.catalog.get(model_name)
        _used_model(model)
        if "embedding" not in model.capabilities:
            raise UnsupportedCapability(f"{model.name.full()} does not support embedding")
        options = self.options_for(model, options)
        lease, spec = await self.lease(model, options, keep_alive, embedding=True)
        async with lease:
            tally.load_duration = lease.load_duration
            windows = embed_windows(
                _client(lease),
                inputs,
                min(spec.num_ctx, spec.num_batch),
                truncate=truncate,
                normalize=normalize,
                tally=tally,
                model_name=model_name,
            )
            try:
                async for vectors in windows:
                    yield [shortened(v, dimensions) for v in vectors]
            except EngineUnreachable as exc:
                raise await _runner_failure(lease) from exc
            finally:
                await aclose(windows)
        _used_tokens(tally.count, 0)

    # ---- shared -----------------------------------------------------------------------

    def _check_common(self, model: Model, think: Any, has_images: bool) -> None:
        if has_images and "vision" not in model.capabilities:
            raise UnsupportedCapability(f"{model.name.full()} does not support vision")
        if think not in (None, False) and "thinking" not in model.capabilities:
            raise UnsupportedCapability(f'"{model.display_name}" does not support thinking')

    def _engine_body(
        self,
        options: dict[str, Any],
        fmt: str | dict[str, Any] | None,
        logprobs: bool = False,
        top_logprobs: int = 0,
    ) -> dict[str, Any]:
        _, sampling = split_options(options)
        body = to_engine_params(sampling)
        body["cache_prompt"] = True
        if logprobs:
            body["n_probs"] = max(1, top_logprobs)
        apply_constraint(body, fmt if fmt == "json" or isinstance(fmt, dict) else None)
        return body

    async def _rendered(self, lease: Lease, rendering: Awaitable[RenderedPrompt]) -> RenderedPrompt:
        """``rendering``'s prompt; a runner whose engine is stuck rendering a chat template
        is stopped, since nothing else ends that render."""
        try:
            return await rendering
        except TemplateTimedOut:
            log.warning("chat template render timed out; stopping runner pid %s", lease.runner.pid)
            await self.scheduler.abandon(lease)
            raise

    async def _stream(self, lease: Lease, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        client = _client(lease)
        try:
            events = aiter(client.completion_stream(body))
            async for event in events:
                usage = request_usage.get()
                if usage is not None and not usage.first_token:
                    usage.first_token = time.perf_counter()
                yield event
                break  # the first event only: the loop below adds nothing per token
            async for event in events:
                yield event
        except EngineUnreachable as exc:
            raise await _runner_failure(lease) from exc


def _too_long(n_tokens: int | None, num_ctx: int, param: str | None = None) -> ContextOverflow:
    """The refusal of a prompt past the context, worded as Ollama words it (``n_tokens`` None:
    a text far longer, not tokenized)."""
    length = f"{n_tokens} tokens" if n_tokens is not None else f"over {num_ctx} tokens"
    return ContextOverflow(
        f"the input length ({length}) exceeds the context length ({num_ctx} tokens)",
        param=param,
    )


def _may_overflow(text: str, spec: RunnerSpec) -> bool:
    """Whether ``text`` could be more tokens than a slot holds: a token is at least one byte of
    it (a special token written out is several), and BOS and EOS may be added. A character is
    at most four bytes, so a short text is not encoded to know."""
    if 4 * len(text) + 2 < spec.num_ctx:
        return False
    return len(text.encode()) + 2 >= spec.num_ctx


def _client(lease: Lease) -> EngineClient:
    client = getattr(lease.runner, "client", None)
    assert client is not None
    return client


async def _runner_failure(lease: Lease) -> Exception:
    """The error for a request whose runner link broke: the process's exit if it died."""
    runner = lease.runner
    wait_exit = getattr(runner, "wait_exit", None)
    if wait_exit is not None and await wait_exit(2.0):
        failure: Exception = runner.failure()  # type: ignore[attr-defined]
        return failure
    return RunnerFailed("llama runner process no longer running")


def _logprobs(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine's token probabilities in Ollama's (and OpenAI's) shape."""
    out = []
    for item in event.get("completion_probabilities") or ():
        out.append(
            {
                "token": item.get("token", ""),
                "logprob": item.get("logprob", 0.0),
                "bytes": item.get("bytes"),
                "top_logprobs": [
                    {
                        "token": t.get("token", ""),
                        "logprob": t.get("logprob", 0.0),
                        "bytes": t.get("bytes"),
                    }
                    for t in item.get("top_logprobs") or ()
                ],
            }
        )
    return out


def _forced_tools(tools: list[dict[str, Any]] | None, choice: str | None) -> dict[str, Any] | None:
    """A JSON schema that admits only a call of the chosen tool(s), or ``None``."""
    if not tools or choice in (None, "auto", "none"):
        return None
    schemas = []
    for tool in tools:
        function = tool.get("function") or {}
        name = function.get("name")
        if choice != "required" and name != choice:
            continue
        schemas.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": name},
                    "arguments": function.get("parameters") or {"type": "object"},
                },
                "required": ["name", "arguments"],
            }
        )
    if not schemas:
        raise BadRequest(f"tool_choice names unknown tool '{choice}'", param="tool_choice")
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _chat_chunk(
    base: Chunk, text: str, calls: list[dict[str, Any]], *, done: bool, thinking: str = ""
) -> Chunk:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = calls
    return {**base, "created_at": now_iso(), "message": message, "done": done}


__all__ = ["InferenceService", "RenderedPrompt", "now_iso"]
