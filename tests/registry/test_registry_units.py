"""Fast tests of the registry pieces: names to URLs, insecure rules, challenges, parts, state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexus.config import ConfigError, Settings
from nexus.errors import BadRequest, InvalidModelName
from nexus.registry.auth import check_realm, parse_challenge, token_url
from nexus.registry.errors import InsecureProtocol, RegistryUnauthorized
from nexus.registry.options import TransferOptions
from nexus.registry.parts import (
    MB,
    Part,
    PartialFiles,
    covers,
    default_part_size,
    split_parts,
)
from nexus.registry.reference import parse_reference
from nexus.registry.served import DistributionError, check_token, find_manifest
from nexus.registry.served import parse_content_range as content_range
from nexus.store.manifests import Layer, Manifest
from nexus.store.names import ModelName
from nexus.store.store import Store

DIGEST = "sha256:" + "ab" * 32

# --- names -> registry URLs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "insecure", "manifest_url"),
    [
        (
            "llama3.1:8b",
            False,
            "https://registry.ollama.ai/v2/library/llama3.1/manifests/8b",
        ),
        ("smollm2", False, "https://registry.ollama.ai/v2/library/smollm2/manifests/latest"),
        ("jmorgan/x:q4", False, "https://registry.ollama.ai/v2/jmorgan/x/manifests/q4"),
        (
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            False,
            "https://hf.co/v2/bartowski/Llama-3.2-1B-Instruct-GGUF/manifests/Q4_K_M",
        ),
        (
            "10.0.0.5:11434/library/smollm2:135m",
            True,
            "http://10.0.0.5:11434/v2/library/smollm2/manifests/135m",
        ),
        (
            "http://127.0.0.1:8080/team/model:v1",
            True,
            "http://127.0.0.1:8080/v2/team/model/manifests/v1",
        ),
        ("https://example.com/a/b:c", False, "https://example.com/v2/a/b/manifests/c"),
        # insecure rewrites even an explicit https to http, as Ollama does
        ("https://example.com/a/b:c", True, "http://example.com/v2/a/b/manifests/c"),
    ],
)
def test_name_to_manifest_url(text: str, insecure: bool, manifest_url: str) -> None:
    assert parse_reference(text, insecure=insecure).manifest_url() == manifest_url


def test_blob_and_upload_urls_and_repository() -> None:
    ref = parse_reference("127.0.0.1:5000/library/smollm2:135m", insecure=True)
    assert ref.repository == "library/smollm2"
    assert ref.name == ModelName("127.0.0.1:5000", "library", "smollm2", "135m")
    assert ref.blob_url("sha256-" + "AB" * 32) == (
        f"http://127.0.0.1:5000/v2/library/smollm2/blobs/{DIGEST}"
    )
    assert ref.uploads_url() == "http://127.0.0.1:5000/v2/library/smollm2/blobs/uploads/"


def test_explicit_http_needs_insecure() -> None:
    with pytest.raises(InsecureProtocol, match="insecure protocol http"):
        parse_reference("http://127.0.0.1:5000/library/smollm2:135m")
    assert parse_reference("http://127.0.0.1:5000/library/m", insecure=True).scheme == "http"
    assert parse_reference("127.0.0.1:5000/library/m").scheme == "https"


@pytest.mark.parametrize("text", ["", "  ", "a/b/c/d", "model:", ":tag", "ns/", "a b", "../x"])
def test_bad_names_are_refused(text: str) -> None:
    with pytest.raises(InvalidModelName):
        parse_reference(text)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(BadRequest, match="unsupported protocol scheme"):
        parse_reference("ftp://host/ns/model:tag")


# --- WWW-Authenticate ---------------------------------------------------------------------


def test_parse_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://registry.ollama.ai/v2/token",service="registry.ollama.ai",'
        'scope="repository:library/llama3:pull"'
    )
    challenge = parse_challenge(header)
    assert challenge is not None
    assert challenge.is_bearer
    assert challenge.realm == "https://registry.ollama.ai/v2/token"
    assert challenge.service == "registry.ollama.ai"
    assert challenge.scope == "repository:library/llama3:pull"


def test_parse_challenge_spacing_escapes_and_bare_values() -> None:
    header = (
        'bearer  Realm = "https://h/token" , service=h, '
        'scope="repository:a/b:pull,push repository:c/d:pull", error="say \\"hi\\""'
    )
    challenge = parse_challenge(header)
    assert challenge is not None
    assert challenge.is_bearer
    assert challenge.realm == "https://h/token"
    assert challenge.service == "h"
    assert challenge.scope == "repository:a/b:pull,push repository:c/d:pull"
    assert challenge.params["error"] == 'say "hi"'


def test_parse_challenge_other_schemes_and_garbage() -> None:
    basic = parse_challenge('Basic realm="x"')
    assert basic is not None and not basic.is_bearer
    assert parse_challenge("") is None
    assert parse_challenge('"quoted"') is None


def test_token_url_adds_service_scopes_ts_and_nonce() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://h/token?x=1",service="svc",scope="repo:a:pull repo:b:pull"'
    )
    assert challenge is not None
    url = token_url(challenge, now=1700000000, nonce="abc=")
    assert url == (
        "https://h/token?x=1&service=svc&scope=repo%3Aa%3Apull&scope=repo%3Ab%3Apull"
        "&ts=1700000000&nonce=abc%3D"
    )


def test_realm_must_be_on_the_registry_host() -> None:
    challenge = parse_challenge('Bearer realm="https://evil.example/token"')
    assert challenge is not None
    with pytest.raises(RegistryUnauthorized, match="does not match original host"):
        check_realm(challenge, "registry.ollama.ai")
    check_realm(challenge, "evil.example")


# --- parts and resume state ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "size"),
    [
        (98 * MB, 100 * MB),
        (1600 * MB, 100 * MB),
        (3200 * MB, 200 * MB),
        (64000 * MB, 1000 * MB),
    ],
)
def test_default_part_size(total: int, size: int) -> None:
    assert default_part_size(total) == size


def test_split_parts() -> None:
    parts = split_parts(10, 4)
    assert [(p.n, p.offset, p.size) for p in parts] == [(0, 0, 4), (1, 4, 4), (2, 8, 2)]
    assert covers(parts, 10)
    assert split_parts(0, 4) == []
    assert [p.size for p in split_parts(8, 4)] == [4, 4]
    with pytest.raises(ValueError):
        split_parts(10, 0)


def test_part_positions() -> None:
    part = Part(n=1, offset=100, size=50, completed=20)
    assert (part.start, part.end, part.done) == (120, 150, False)
    part.completed = 50
    assert part.done


def test_covers_refuses_gaps_overlaps_and_short_plans() -> None:
    assert not covers([Part(0, 0, 4), Part(1, 5, 5)], 10)
    assert not covers([Part(0, 0, 4), Part(1, 3, 7)], 10)
    assert not covers([Part(0, 0, 4)], 10)
    assert not covers([Part(1, 0, 10)], 10)


def test_partial_state_round_trip(tmp_path: Path) -> None:
    blob = tmp_path / "blobs" / ("sha256-" + "ab" * 32)
    files = PartialFiles(blob)
    parts = split_parts(10, 4)
    files.create(parts, 10)
    assert files.data.name == blob.name + "-partial"
    assert files.data.stat().st_size == 10
    parts[1].completed = 3
    files.save(parts[1])
    state = json.loads(files.state(1).read_text())
    assert state == {"N": 1, "Offset": 4, "Size": 4, "Completed": 3}  # Ollama's format
    loaded = files.load(10)
    assert loaded is not None
    assert [(p.n, p.offset, p.size, p.completed) for p in loaded] == [
        (0, 0, 4, 0),
        (1, 4, 4, 3),
        (2, 8, 2, 0),
    ]
    assert not list(blob.parent.glob(".*.tmp"))
    files.clear()
    assert list(blob.parent.iterdir()) == []


def test_partial_state_that_cannot_be_trusted_is_not_resumed(tmp_path: Path) -> None:
    blob = tmp_path / ("sha256-" + "cd" * 32)
    files = PartialFiles(blob)
    assert files.load(10) is None  # nothing there
    files.create(split_parts(10, 4), 10)
    assert files.load(11) is None  # a different size
    files.state(1).write_text("{not json")
    assert files.load(10) is None
    files.state(1).write_text(json.dumps({"N": 1, "Offset": 4, "Size": 4, "Completed": -1}))
    assert files.load(10) is None
    files.state(1).unlink()
    assert files.load(10) is None  # a gap
    files.create(split_parts(10, 4), 10)
    files.data.unlink()
    assert files.load(10) is None  # states without data


def test_state_files_belong_to_their_blob_only(tmp_path: Path) -> None:
    blob = tmp_path / ("sha256-" + "ab" * 32)
    other = tmp_path / ("sha256-" + "ab" * 31 + "cd")
    PartialFiles(blob).create(split_parts(8, 4), 8)
    PartialFiles(other).create(split_parts(8, 8), 8)
    (tmp_path / (blob.name + "-partial-x")).write_text("{}")
    names = sorted(p.name for p in PartialFiles(blob).state_files())
    assert names == [blob.name + "-partial-0", blob.name + "-partial-1"]


def test_pull_part_size_setting() -> None:
    assert Settings.from_env({}).pull_part_size is None
    assert Settings.from_env({"NEXUS_PULL_PART_SIZE": "65536"}).pull_part_size == 65536
    with pytest.raises(ConfigError, match="NEXUS_PULL_PART_SIZE"):
        Settings.from_env({"NEXUS_PULL_PART_SIZE": "x"})
    options = TransferOptions(part_size=1000)
    assert options.part_size_for(10**12) == 1000
    assert TransferOptions().part_size_for(98 * MB) == 100 * MB


# --- served side --------------------------------------------------------------------------


def test_push_token_setting() -> None:
    assert Settings.from_env({}).push_token is None
    assert Settings.from_env({"NEXUS_PUSH_TOKEN": "s3cret"}).push_token == "s3cret"


def test_write_side_needs_the_push_token() -> None:
    with pytest.raises(DistributionError) as off:
        check_token(None, "Bearer anything")
    assert (off.value.status, off.value.code) == (405, "UNSUPPORTED")
    for header in ("", "Bearer wrong", "Basic czNjcmV0", "s3cret"):
        with pytest.raises(DistributionError) as refused:
            check_token("s3cret", header)
        assert (refused.value.status, refused.value.code) == (401, "UNAUTHORIZED")
        assert "WWW-Authenticate" in refused.value.headers
    check_token("s3cret", "Bearer s3cret")
    check_token("s3cret", "bearer  s3cret ")


def test_parse_content_range() -> None:
    assert content_range("0-99") == (0, 99)
    assert content_range("bytes 100-199/1000") == (100, 199)
    assert content_range("garbage") is None
    assert content_range("-5") is None


def _store_with(tmp_path: Path, names: list[str]) -> Store:
    store = Store(tmp_path)
    config = store.blobs.put_bytes(b"{}")
    for index, text in enumerate(names):
        layer = Layer(mediaType="application/vnd.ollama.image.system", digest=DIGEST, size=index)
        manifest = Manifest(
            config=Layer(mediaType="c", digest=config.digest, size=config.size), layers=[layer]
        )
        store.manifests.write(ModelName.parse(text), manifest)
    return store


def test_served_names_prefer_the_addressed_host(tmp_path: Path) -> None:
    store = _store_with(
        tmp_path,
        ["smollm2:135m", "10.0.0.5:11434/library/smollm2:135m", "other.host/library/smollm2:135m"],
    )
    host_match = find_manifest(store, "library", "smollm2", "135m", "10.0.0.5:11434")
    assert host_match == ModelName("10.0.0.5:11434", "library", "smollm2", "135m")
    default = find_manifest(store, "library", "SmolLM2", "135M", "127.0.0.1:9")
    assert default == ModelName.parse("smollm2:135m")
    assert find_manifest(store, "library", "smollm2", "latest", "x") is None
    assert find_manifest(store, "team", "smollm2", "135m", "x") is None


def test_served_names_by_manifest_digest(tmp_path: Path) -> None:
    store = _store_with(tmp_path, ["team/model:v1", "team/model:v2"])
    stored = store.manifests.read(ModelName.parse("team/model:v2"))
    found = find_manifest(store, "team", "model", f"sha256:{stored.digest}", "h")
    assert found == ModelName.parse("team/model:v2")
    assert find_manifest(store, "team", "model", "sha256:" + "0" * 64, "h") is None
    assert find_manifest(store, "team", "model", "sha256:zz", "h") is None
