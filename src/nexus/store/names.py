"""Model names: ``[host/][namespace/]model[:tag]``, parsed and validated like Ollama."""

from __future__ import annotations

from dataclasses import dataclass

from nexus.errors import InvalidModelName

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

# Stands in for a part that a separator promised but the text left empty ("a/", ":x");
# it can never validate, so such names are rejected.
_MISSING = "!MISSING!"

_HEAD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_HOST_CHARS = _HEAD_CHARS | frozenset("-.:")
_NAMESPACE_CHARS = _HEAD_CHARS | frozenset("-")
_MODEL_CHARS = _HEAD_CHARS | frozenset("-.")

# part -> (allowed characters after the first, maximum length)
_RULES: dict[str, tuple[frozenset[str], int]] = {
    "host": (_HOST_CHARS, 350),
    "namespace": (_NAMESPACE_CHARS, 80),
    "model": (_MODEL_CHARS, 80),
    "tag": (_MODEL_CHARS, 80),
}


def _valid_part(kind: str, text: str) -> bool:
    allowed, max_len = _RULES[kind]
    if not 1 <= len(text) <= max_len or text[0] not in _HEAD_CHARS:
        return False
    # ".." is legal inside a part for Ollama, but no real name needs it and a store path
    # built from names must never look like a traversal, so it is refused outright.
    return all(c in allowed for c in text[1:]) and ".." not in text


def _cut_last(text: str, sep: str) -> tuple[str, str, bool]:
    before, found, after = text.rpartition(sep)
    if not found:
        return text, "", False
    return before or _MISSING, after or _MISSING, True


@dataclass(frozen=True)
class ModelName:
    """A fully qualified, validated model name; construction fails on any invalid part."""

    host: str
    namespace: str
    model: str
    tag: str

    def __post_init__(self) -> None:
        for kind in ("host", "namespace", "model", "tag"):
            if not _valid_part(kind, getattr(self, kind)):
                raise InvalidModelName()

    @classmethod
    def parse(cls, text: str) -> ModelName:
        host = namespace = tag = ""
        rest = text
        # A ":" after the last "/" starts the tag; one before it belongs to a host port.
        if rest.rfind(":") > rest.rfind("/"):
            rest, tag, _ = _cut_last(rest, ":")
        rest, model, cut = _cut_last(rest, "/")
        if not cut:
            model = rest
        else:
            rest, namespace, cut = _cut_last(rest, "/")
            if not cut:
                namespace = rest
            else:
                _, scheme_sep, after = rest.partition("://")
                host = after if scheme_sep else rest
        return cls(
            host=host or DEFAULT_HOST,
            namespace=namespace or DEFAULT_NAMESPACE,
            model=model,
            tag=tag or DEFAULT_TAG,
        )

    def display(self) -> str:
        """Shortest unambiguous form, as ``/api/tags`` shows it; the tag is always kept."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    def full(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def manifest_parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    def equal_fold(self, other: ModelName) -> bool:
        return all(
            a.casefold() == b.casefold()
            for a, b in zip(self.manifest_parts(), other.manifest_parts(), strict=True)
        )

    def registry_repository(self) -> str:
        return f"{self.namespace}/{self.model}"

    def __str__(self) -> str:
        return self.full()
