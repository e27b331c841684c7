"""Nexus: an Ollama-compatible LLM inference service on llama.cpp."""

__version__ = "0.1.0"
