"""Which backend takes a request: a healthy one that has the model, preferring one that has
it loaded, then the least busy for its weight."""

from __future__ import annotations

from nexus.gateway.backends import Backend
from nexus.gateway.errors import BadRequest, ModelNotFound, NoBackend
from nexus.gateway.models import canonical


class Router:
    def __init__(self, backends: list[Backend], default: str) -> None:
        self.backends = backends
        self.by_name = {b.name: b for b in backends}
        self.default = default

    def named(self, name: str) -> Backend:
        backend = self.by_name.get(name)
        if backend is None:
            raise BadRequest(f'unknown backend "{name}" (known: {", ".join(self.by_name)})')
        return backend

    def default_backends(self) -> list[Backend]:
        """The default backend (or, when DEFAULT_BACKEND names a kind, every one of that kind)."""
        if self.default in self.by_name:
            return [self.by_name[self.default]]
        return [b for b in self.backends if b.kind == self.default]

    def for_model(self, model: str, pinned: str | None = None) -> list[Backend]:
        """Backends to try in order (the second one only if the first fails before answering).

        A model no healthy backend lists goes to the default backend, which answers with its
        own error (Ollama's "model not found, try pulling it first") or serves it.
        """
        key = canonical(model)
        if pinned:
            backend = self.named(pinned)
            if not backend.up:
                raise NoBackend(f'backend "{pinned}" is down: {backend.last_error}')
            return [backend]
        candidates = [b for b in self.backends if b.up and key in b.models]
        if not candidates:
            fallback = [b for b in self.default_backends() if b.up]
            if fallback:
                return fallback[:2]
            if any(b.up for b in self.backends):
                raise ModelNotFound(f'model "{model}" not found on any backend')
            raise NoBackend("no backend is up")
        candidates.sort(key=lambda b: (key not in b.loaded, b.in_flight / b.config.weight))
        return candidates[:2]

    def for_admin(self, pinned: str | None = None) -> Backend:
        """Model management goes to the named backend, else the default one."""
        if pinned:
            backend = self.named(pinned)
        else:
            defaults = self.default_backends()
            if not defaults:
                raise NoBackend("no default backend")
            backend = next((b for b in defaults if b.up), defaults[0])
        if not backend.up:
            raise NoBackend(f'backend "{backend.name}" is down: {backend.last_error}')
        return backend
