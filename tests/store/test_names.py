import pytest

from nexus.errors import InvalidModelName
from nexus.store.names import ModelName

D_HOST, D_NS, D_TAG = "registry.ollama.ai", "library", "latest"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("llama3", (D_HOST, D_NS, "llama3", D_TAG)),
        ("llama3:8b", (D_HOST, D_NS, "llama3", "8b")),
        ("llama3.2:3b-instruct-q4_K_M", (D_HOST, D_NS, "llama3.2", "3b-instruct-q4_K_M")),
        ("user/model", (D_HOST, "user", "model", D_TAG)),
        ("user/model:v1", (D_HOST, "user", "model", "v1")),
        ("example.com/user/model:v1", ("example.com", "user", "model", "v1")),
        ("localhost:5000/ns/m", ("localhost:5000", "ns", "m", D_TAG)),
        ("localhost:5000/ns/m:t", ("localhost:5000", "ns", "m", "t")),
        ("https://example.com/ns/m:t", ("example.com", "ns", "m", "t")),
        ("http://localhost:8080/ns/m", ("localhost:8080", "ns", "m", D_TAG)),
        ("_under/x_y:_z", (D_HOST, "_under", "x_y", "_z")),
        ("MiXeD/CaSe:TaG", (D_HOST, "MiXeD", "CaSe", "TaG")),
    ],
)
def test_parse_valid(text: str, parts: tuple[str, str, str, str]) -> None:
    assert ModelName.parse(text).manifest_parts() == parts


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":",
        "model:",
        ":tag",
        "/model",
        "ns/",
        "host//model",
        "a/b/c/d",
        "-model",
        ".model",
        "model:-tag",
        "name.space/model",  # no dots in a namespace
        "model name",
        "mödel",
        "model:tag/x",
        "model@sha256:abc",
        "x" * 81,
        "model:" + "t" * 81,
        ("h" * 351) + "/ns/m",
        "host:/ns/m:",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(InvalidModelName):
        ModelName.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "..",
        "../x",
        "a/../../b",
        "../../../../etc/passwd",
        "host/../m",
        "ns/..:latest",
        "m:..",
        "model..name",
        "/etc/passwd",
        "/abs/ns/m",
        "a\\b",
        "..\\..\\x",
        "x\x00y",
        "ns/m:t\x00",
        "~/x",
        "./x",
        "x/./y",
    ],
)
def test_path_escapes_are_rejected(text: str) -> None:
    with pytest.raises(InvalidModelName):
        ModelName.parse(text)


def test_lengths_at_the_limit_are_accepted() -> None:
    name = ModelName.parse(("h" * 350) + "/" + ("n" * 80) + "/" + ("m" * 80) + ":" + ("t" * 80))
    assert (len(name.host), len(name.namespace), len(name.model), len(name.tag)) == (
        350,
        80,
        80,
        80,
    )


def test_constructor_validates_parts() -> None:
    with pytest.raises(InvalidModelName):
        ModelName("registry.ollama.ai", "library", "..", "latest")
    with pytest.raises(InvalidModelName):
        ModelName("registry.ollama.ai", "a/b", "m", "latest")


def test_invalid_model_name_is_a_400() -> None:
    with pytest.raises(InvalidModelName) as info:
        ModelName.parse("bad name")
    assert info.value.status == 400
    assert info.value.message == "invalid model name"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("llama3", "llama3:latest"),
        ("llama3:8b", "llama3:8b"),
        ("library/llama3:8b", "llama3:8b"),
        ("REGISTRY.OLLAMA.AI/LIBRARY/m:t", "m:t"),
        ("user/model", "user/model:latest"),
        ("registry.ollama.ai/user/model:v1", "user/model:v1"),
        ("example.com/library/model", "example.com/library/model:latest"),
        ("localhost:5000/ns/m:t", "localhost:5000/ns/m:t"),
    ],
)
def test_display_shortest(text: str, shown: str) -> None:
    assert ModelName.parse(text).display() == shown


def test_full_and_repository() -> None:
    name = ModelName.parse("user/model:v1")
    assert name.full() == "registry.ollama.ai/user/model:v1"
    assert str(name) == name.full()
    assert name.registry_repository() == "user/model"
    assert ModelName.parse(name.full()) == name


def test_equal_fold() -> None:
    a = ModelName.parse("Llama3:8B")
    b = ModelName.parse("llama3:8b")
    assert a != b
    assert a.equal_fold(b)
    assert not a.equal_fold(ModelName.parse("llama3:7b"))
    assert not a.equal_fold(ModelName.parse("other/llama3:8b"))


def test_is_hashable_and_frozen() -> None:
    name = ModelName.parse("m")
    assert {name: 1}[ModelName.parse("m:latest")] == 1
    with pytest.raises(AttributeError):
        name.tag = "x"  # type: ignore[misc]
