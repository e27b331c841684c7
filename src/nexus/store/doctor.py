"""Checks of a whole store: every manifest readable, every blob it names present with the
size it names and the content its digest names; blobs nobody references; leftovers of dead
writers. ``repair`` removes what cannot be used: corrupt or truncated blobs, manifests whose
blobs are gone (the model must be pulled or created again), leftovers, and (unless
``noprune``) blobs no manifest references."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from nexus.errors import InvalidDigest, ModelNotFound, StoreError
from nexus.store.blobs import parse_digest
from nexus.store.names import ModelName
from nexus.store.store import Store

_CHUNK = 1 << 20


@dataclass
class Finding:
    """One problem: what it is about, what is wrong, and what ``repair`` did about it."""

    subject: str
    problem: str
    repaired: str = ""


@dataclass
class Report:
    manifests: int = 0
    blobs: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not [f for f in self.findings if not f.repaired]


def _sha256(path_digest: str, store: Store) -> str:
    hasher = hashlib.sha256()
    with store.blobs.path(path_digest).open("rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


def examine(
    store: Store,
    *,
    repair: bool = False,
    verify_content: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Check the store (and with ``repair`` fix it); see the module's docstring."""
    report = Report()
    bad_blobs: dict[str, str] = {}  # digest -> why it cannot be used
    referenced: set[str] = set()
    wanted: dict[ModelName, list[tuple[str, int]]] = {}
    for name in store.manifests.names():
        report.manifests += 1
        try:
            manifest = store.manifests.read(name).manifest
        except (StoreError, OSError) as exc:
            finding = Finding(name.display(), f"manifest unreadable: {exc}")
            if repair:
                store.manifests.delete(name)
                finding.repaired = "manifest removed"
            report.findings.append(finding)
            continue
        except ModelNotFound:
            continue
        entries = [(manifest.config.digest, manifest.config.size)]
        entries += [(layer.digest, layer.size) for layer in manifest.layers]
        wanted[name] = []
        for digest, size in entries:
            try:
                normal = parse_digest(digest)
            except InvalidDigest:
                report.findings.append(Finding(name.display(), f"invalid digest {digest!r}"))
                continue
            referenced.add(normal)
            wanted[name].append((normal, size))
    for digest in sorted(referenced):
        progress(f"checking {digest[:19]}")
        path = store.blobs.path(digest)
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            bad_blobs[digest] = "missing"
            continue
        except OSError as exc:
            bad_blobs[digest] = f"unreadable ({exc.strerror})"
            continue
        report.blobs += 1
        sizes = {size for entries in wanted.values() for d, size in entries if d == digest}
        if actual not in sizes:
            bad_blobs[digest] = f"{actual} bytes where the manifest says {min(sizes)}"
        elif verify_content:
            try:
                got = _sha256(digest, store)
            except OSError as exc:
                bad_blobs[digest] = f"unreadable ({exc.strerror})"
                continue
            if got != digest:
                bad_blobs[digest] = f"content hashes to {got}"
    for digest, why in sorted(bad_blobs.items()):
        finding = Finding(digest, f"blob {why}")
        if repair:
            store.blobs.remove(digest)
            finding.repaired = "blob removed" if why != "missing" else "its models removed"
        report.findings.append(finding)
    for name, entries in list(wanted.items()):
        broken = [d for d, _ in entries if d in bad_blobs]
        if not broken:
            continue
        finding = Finding(
            name.display(), f"needs {len(broken)} unusable blob(s): pull or create it again"
        )
        if repair:
            store.manifests.delete(name)
            del wanted[name]
            finding.repaired = "manifest removed"
        report.findings.append(finding)
    still_used = {digest for entries in wanted.values() for digest, _ in entries}
    orphans = store.blobs.all_digests() - still_used - set(bad_blobs)
    for digest in sorted(orphans):
        finding = Finding(digest, "blob referenced by no manifest")
        if repair and not store.noprune:
            store.blobs.remove(digest)
            finding.repaired = "blob removed"
        elif store.noprune:
            finding.repaired = "kept (OLLAMA_NOPRUNE)"
        report.findings.append(finding)
    if repair:
        removed = store.remove_leftovers()
        if removed:
            report.findings.append(Finding("blobs/", f"{removed} leftover file(s)", "removed"))
        store.manifests.remove_empty_dirs()
    return report


__all__ = ["Finding", "Report", "examine"]
