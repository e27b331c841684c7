"""``/api/create`` for GGUF models: build layers, a config blob and a manifest."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from nexus.errors import BadRequest, BlobNotFound, ModelNotFound, StoreError
from nexus.store.blobs import parse_digest
from nexus.store.manifests import (
    ADAPTER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    LICENSE_MEDIA_TYPE,
    MESSAGES_MEDIA_TYPE,
    MODEL_MEDIA_TYPE,
    PARAMS_MEDIA_TYPE,
    PROJECTOR_MEDIA_TYPE,
    PROMPT_MEDIA_TYPE,
    SYSTEM_MEDIA_TYPE,
    TEMPLATE_MEDIA_TYPE,
    Layer,
    Manifest,
)
from nexus.store.names import ModelName
from nexus.store.store import Store

if TYPE_CHECKING:
    from nexus.store.gguf_meta import GGUFInfo

Progress = Callable[[str], None]

GGUF_MAGIC = b"GGUF"
_GGUF_MEDIA_TYPES = (MODEL_MEDIA_TYPE, PROJECTOR_MEDIA_TYPE, ADAPTER_MEDIA_TYPE)
_LAYER_ORDER = (
    MODEL_MEDIA_TYPE,
    ADAPTER_MEDIA_TYPE,
    PROJECTOR_MEDIA_TYPE,
    TEMPLATE_MEDIA_TYPE,
    PROMPT_MEDIA_TYPE,
    SYSTEM_MEDIA_TYPE,
    PARAMS_MEDIA_TYPE,
    MESSAGES_MEDIA_TYPE,
    LICENSE_MEDIA_TYPE,
)
_QUANTIZABLE = ("F16", "F32", "BF16")
_SEMVER_RE = re.compile(r"v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")
# Go's encoder escapes these; matching it keeps our blob digests equal to Ollama's.
_GO_ESCAPES = tuple((c, f"\\u{ord(c):04x}") for c in "<>&\u2028\u2029")


class CreateSpec(BaseModel):
    """Body of ``POST /api/create``."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    model: str = ""
    name: str | None = None  # deprecated spelling of ``model``
    from_: str | None = Field(default=None, alias="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    system: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    quantize: str | None = None
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None
    stream: bool = True


@dataclass
class _Pending:
    layer: Layer
    status: str


def _go_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON with a trailing newline, escaped the way Go's json.Encoder does."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
    for char, escaped in _GO_ESCAPES:
        text = text.replace(char, escaped)
    return (text + "\n").encode()


def _valid_relative_path(path: str) -> bool:
    if not path or "\0" in path or "\\" in path or path.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _checked_files(files: dict[str, str] | None) -> dict[str, str]:
    checked = {}
    for path, digest in sorted((files or {}).items()):
        if not _valid_relative_path(path):
            raise BadRequest("file path must be relative")
        checked[path] = parse_digest(digest)
    return checked


def _gguf_info(store: Store, digest: str) -> GGUFInfo:
    from nexus.store.gguf_meta import read_gguf_info

    try:
        return read_gguf_info(store.blobs.path(digest))
    except ValueError as exc:
        raise StoreError(f"cannot read GGUF blob {digest}: {exc}") from None


def _media_type_of(info: GGUFInfo) -> str:
    kind = info.get("general.type")
    if kind == "adapter":
        return ADAPTER_MEDIA_TYPE
    # A vision tower shipped on its own: no text blocks, only vision ones.
    if kind == "projector" or info.architecture == "clip":
        return PROJECTOR_MEDIA_TYPE
    if info.block_count == 0 and info.has_vision:
        return PROJECTOR_MEDIA_TYPE
    return MODEL_MEDIA_TYPE


def _new_layer(store: Store, data: bytes, media_type: str) -> _Pending:
    blob = store.blobs.put_bytes(data)
    verb = "creating new layer" if blob.created else "using existing layer"
    return _Pending(
        Layer(mediaType=media_type, digest=blob.digest, size=blob.size), f"{verb} {blob.digest}"
    )


def _existing_layer(store: Store, digest: str, media_type: str, source: str | None) -> _Pending:
    store.blobs.touch(digest)
    layer = Layer.model_validate(
        {
            "mediaType": media_type,
            "digest": digest,
            "size": store.blobs.size(digest),
            "from": source,
        }
    )
    return _Pending(layer, f"using existing layer {digest}")


def _layers_from_files(
    store: Store, files: dict[str, str], adapter: bool, progress: Progress
) -> list[_Pending]:
    pending = []
    for digest in files.values():
        path = store.blobs.path(digest)
        try:
            with path.open("rb") as f:
                magic = f.read(len(GGUF_MAGIC))
        except FileNotFoundError:
            raise BadRequest(f'blob "{digest}" not found') from None
        if magic != GGUF_MAGIC:
            raise BadRequest("supplied file was not in GGUF format")
        progress("parsing GGUF")
        try:
            info = _gguf_info(store, digest)
        except StoreError:
            raise BadRequest("supplied file was not in GGUF format") from None
        media_type = ADAPTER_MEDIA_TYPE if adapter else _media_type_of(info)
        pending.append(_existing_layer(store, digest, media_type, None))
    return pending


def _layers_from_model(
    store: Store, base: ModelName, requested: str
) -> tuple[list[_Pending], dict[str, Any]]:
    """The base model's layers (marked as coming from it) and its config blob's JSON."""
    stored = store.manifests.read(base, requested)
    source = stored.name.display()
    try:
        pending = [
            _existing_layer(store, layer.digest, layer.mediaType, source)
            for layer in stored.manifest.layers
        ]
    except BlobNotFound as exc:
        raise StoreError(
            f"model '{requested}' is incomplete ({exc.message}); pull it again"
        ) from None
    try:
        config = json.loads(store.blobs.read_bytes(stored.manifest.config.digest))
    except (BlobNotFound, ValueError):
        config = {}
    return pending, config if isinstance(config, dict) else {}


def _replace(
    layers: list[_Pending], media_types: tuple[str, ...], new: _Pending | None
) -> list[_Pending]:
    kept = [p for p in layers if p.layer.mediaType not in media_types]
    return [*kept, new] if new is not None else kept


def _merged_params(
    store: Store, layers: list[_Pending], requested: dict[str, Any] | None
) -> dict[str, Any]:
    from nexus.options import validate_parameters

    merged: dict[str, Any] = {}
    for p in layers:
        if p.layer.mediaType == PARAMS_MEDIA_TYPE:
            existing = json.loads(store.blobs.read_bytes(p.layer.digest))
            if isinstance(existing, dict):
                merged.update(existing)
    if requested:
        merged.update(validate_parameters(requested))
    return merged


#: Roles a model's stored messages may have (Modelfile ``MESSAGE`` and /api/create).
MESSAGE_ROLES = ("system", "user", "assistant", "tool")


def _normalised_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        role, content = message.get("role"), message.get("content", "")
        if not isinstance(role, str) or not isinstance(content, str):
            raise BadRequest("messages need a string 'role' and 'content'")
        if role not in MESSAGE_ROLES:
            raise BadRequest(
                f"invalid message role {role!r}: expected one of {', '.join(MESSAGE_ROLES)}",
                param="messages",
            )
        rest = {k: v for k, v in message.items() if k not in ("role", "content") and v}
        out.append({"role": role, "content": content, **rest})
    return out


def _licenses(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _config_blob(
    store: Store, spec: CreateSpec, layers: list[_Pending], base_config: dict[str, Any]
) -> Layer:
    infos = [
        _gguf_info(store, p.layer.digest) for p in layers if p.layer.mediaType in _GGUF_MEDIA_TYPES
    ]
    if not infos:
        raise BadRequest("no base model was found")
    families: list[str] = []
    for info in infos:
        for family in info.families or [info.family]:
            if family not in families:
                families.append(family)
    main = infos[0]
    config: dict[str, Any] = {
        "model_format": "gguf",
        "model_family": main.family,
        "model_families": families,
        "model_type": main.parameter_size,
        "file_type": main.quantization_level,
    }
    for key in ("renderer", "parser", "requires"):
        value = getattr(spec, key) or base_config.get(key)
        if value:
            config[key] = value
    config["architecture"] = "amd64"
    config["os"] = "linux"
    config["rootfs"] = {"type": "layers", "diff_ids": [p.layer.digest for p in layers]}
    blob = store.blobs.put_bytes(_go_json(config))
    return Layer(mediaType=CONFIG_MEDIA_TYPE, digest=blob.digest, size=blob.size)


def _rank(pending: _Pending) -> int:
    media_type = pending.layer.mediaType
    return _LAYER_ORDER.index(media_type) if media_type in _LAYER_ORDER else len(_LAYER_ORDER)


def create_model(store: Store, spec: CreateSpec, progress: Progress) -> None:
    with store.lock:
        _create(store, spec, progress)


def _create(store: Store, spec: CreateSpec, progress: Progress) -> None:
    target = ModelName.parse(spec.model or spec.name or "")
    target = store.manifests.resolve(target) or target
    files = _checked_files(spec.files)
    adapters = _checked_files(spec.adapters)
    if len(adapters) > 1:
        raise BadRequest("only one adapter is currently supported")
    if spec.requires and not _SEMVER_RE.fullmatch(spec.requires):
        raise BadRequest("requires must be a valid semver (e.g. 0.14.0)")

    base_config: dict[str, Any] = {}
    if spec.from_:
        base = ModelName.parse(spec.from_)
        found = store.manifests.resolve(base)
        if found is None:
            raise ModelNotFound(f"model '{spec.from_}' not found")
        layers, base_config = _layers_from_model(store, found, spec.from_)
    elif files:
        layers = _layers_from_files(store, files, adapter=False, progress=progress)
    else:
        raise BadRequest("neither 'from' or 'files' was specified")
    if adapters:
        adapter_layers = _layers_from_files(store, adapters, adapter=True, progress=progress)
        layers = _replace(layers, (ADAPTER_MEDIA_TYPE,), None) + adapter_layers

    if spec.quantize:
        _refuse_quantize(store, layers, spec.quantize)
    if spec.template:
        from nexus.template import parse

        parse(spec.template)  # a template that does not parse is refused with its error
        new = _new_layer(store, spec.template.encode(), TEMPLATE_MEDIA_TYPE)
        layers = _replace(layers, (TEMPLATE_MEDIA_TYPE, PROMPT_MEDIA_TYPE), new)
    if spec.system:
        layers = _replace(
            layers, (SYSTEM_MEDIA_TYPE,), _new_layer(store, spec.system.encode(), SYSTEM_MEDIA_TYPE)
        )
    params = _merged_params(store, layers, spec.parameters)
    if params:
        new = _new_layer(store, _go_json(params, sort_keys=True), PARAMS_MEDIA_TYPE)
        layers = _replace(layers, (PARAMS_MEDIA_TYPE,), new)
    if spec.messages:
        data = _go_json(_normalised_messages(spec.messages))
        layers = _replace(
            layers, (MESSAGES_MEDIA_TYPE,), _new_layer(store, data, MESSAGES_MEDIA_TYPE)
        )
    for text in _licenses(spec.license):
        if text:
            new = _new_layer(store, text.encode(), LICENSE_MEDIA_TYPE)
            if all(p.layer.digest != new.layer.digest for p in layers):
                layers.append(new)

    layers.sort(key=_rank)
    config = _config_blob(store, spec, layers, base_config)
    for p in layers:
        progress(p.status)

    try:
        old: Manifest | None = store.manifests.read(target).manifest
    except (ModelNotFound, StoreError):
        old = None
    progress("writing manifest")
    store.manifests.write(target, Manifest(config=config, layers=[p.layer for p in layers]))
    if old is not None:
        store.remove_unused(old)
    progress("success")


def _refuse_quantize(store: Store, layers: list[_Pending], quantize: str) -> None:
    for p in layers:
        if p.layer.mediaType == MODEL_MEDIA_TYPE:
            if _gguf_info(store, p.layer.digest).quantization_level.upper() not in _QUANTIZABLE:
                raise BadRequest("quantization is only supported for F16 and F32 models")
            raise BadRequest(f"quantizing to {quantize.upper()} is not supported yet")


def create_from_gguf_file(store: Store, name: str, gguf_path: Path, progress: Progress) -> None:
    """Register a GGUF file on disk as a model (how ``make run`` adds the default one)."""
    digest, _ = store.blobs.import_file(gguf_path)
    create_model(store, CreateSpec(model=name, files={gguf_path.name: digest}), progress)
