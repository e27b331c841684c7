"""Where a model name lives on the wire: scheme, registry host and repository path."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from nexus.errors import BadRequest, InvalidModelName
from nexus.registry.errors import InsecureProtocol
from nexus.store.blobs import parse_digest
from nexus.store.names import ModelName

DEFAULT_SCHEME = "https"
_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class RegistryRef:
    """A model name plus the protocol used to reach its registry."""

    name: ModelName
    scheme: str = DEFAULT_SCHEME

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.name.host}"

    @property
    def repository(self) -> str:
        """``<namespace>/<model>``, the distribution API's repository path."""
        return self.name.registry_repository()

    def manifest_url(self, reference: str | None = None) -> str:
        ref = reference if reference is not None else self.name.tag
        return f"{self.base_url}/v2/{self.repository}/manifests/{quote(ref, safe=':')}"

    def blob_url(self, digest: str) -> str:
        return f"{self.base_url}/v2/{self.repository}/blobs/{parse_digest(digest)}"

    def uploads_url(self) -> str:
        return f"{self.base_url}/v2/{self.repository}/blobs/uploads/"


def explicit_scheme(text: str) -> str | None:
    """The ``scheme`` of a name written ``scheme://host/ns/model``, if it has one."""
    head, sep, _ = text.partition("://")
    if not sep or "/" in head:
        return None
    return head.lower()


def parse_reference(text: str, *, insecure: bool = False) -> RegistryRef:
    """Parse a pull/push name as Ollama does.

    ``https`` unless ``insecure`` (which always uses ``http``); an explicit ``http://`` name
    needs ``insecure`` and is refused without it.
    """
    text = text.strip()
    if not text:
        raise InvalidModelName("model is required")
    scheme = explicit_scheme(text)
    if scheme is not None and scheme not in _SCHEMES:
        raise BadRequest(f'unsupported protocol scheme "{scheme}"', param="model")
    name = ModelName.parse(text)
    if insecure:
        return RegistryRef(name, "http")
    if scheme == "http":
        raise InsecureProtocol()
    return RegistryRef(name, DEFAULT_SCHEME)
