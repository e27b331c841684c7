"""Ollama's native API served by OpenAI-compatible backends (vLLM, SGLang, TGI, llama.cpp's
server): requests, replies and NDJSON streams translated both ways."""

from nexus.gateway.translate.native import NATIVE_ROUTES, NativeOverOpenAI

__all__ = ["NATIVE_ROUTES", "NativeOverOpenAI"]
