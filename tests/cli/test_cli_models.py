"""list/ls, ps, cp, rm and stop against the session server."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from nexus.cli.humanize import human_bytes
from tests.cli.conftest import Cli
from tests.support import DEFAULT_MODEL


def _columns(line: str) -> list[str]:
    return re.split(r" {4,}", line.strip())


def _row(out: str, name: str) -> str:
    rows = [line for line in out.splitlines() if line.split(" ", 1)[0] == name]
    assert len(rows) == 1, out
    return rows[0]


def test_list_shows_the_default_model(cli: Cli, api: httpx.Client) -> None:
    result = cli("list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    header = lines[0]
    assert _columns(header) == ["NAME", "ID", "SIZE", "MODIFIED"]
    tag = next(m for m in api.get("/api/tags").json()["models"] if m["name"] == DEFAULT_MODEL)
    row = _row(result.out, DEFAULT_MODEL)
    name, digest, size, modified = _columns(row)
    assert (name, digest, size) == (DEFAULT_MODEL, tag["digest"][:12], human_bytes(tag["size"]))
    assert re.fullmatch(r"(Less than a second|\d+ \w+|About an? \w+) ago", modified), modified
    # Columns line up under their headers, four spaces apart at least.
    assert row.index(digest) == header.index("ID")
    assert row.index(size) == header.index("SIZE")


def test_ls_is_list_and_a_prefix_filters(cli: Cli) -> None:
    listed, aliased = cli("list"), cli("ls")
    assert aliased.code == 0
    names = [line.split()[0] for line in listed.out.splitlines()]
    assert [line.split()[0] for line in aliased.out.splitlines()] == names
    only = cli("ls", "smollm2")
    assert [line.split()[0] for line in only.out.splitlines()] == ["NAME", DEFAULT_MODEL]
    assert cli("ls", "no-such-prefix").out.splitlines() == ["NAME    ID    SIZE    MODIFIED"]


def test_ps_after_a_run(cli: Cli, api: httpx.Client, greedy: str) -> None:
    assert cli("run", greedy, "Hi", "--keepalive", "10m").code == 0
    result = cli("ps")
    assert result.code == 0, result.err
    header = result.out.splitlines()[0]
    assert _columns(header) == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    loaded = next(m for m in api.get("/api/ps").json()["models"] if m["name"] == greedy)
    name, digest, size, processor, context, until = _columns(_row(result.out, greedy))
    assert (name, digest, size) == (greedy, loaded["digest"][:12], human_bytes(loaded["size"]))
    assert re.fullmatch(r"100% CPU|100% GPU|\d+%/\d+% CPU/GPU", processor)
    assert context == str(loaded["context_length"]) == "2048"
    assert re.fullmatch(r"(9|10) minutes from now", until), until


def test_stop_unloads_the_model(cli: Cli, api: httpx.Client, greedy: str) -> None:
    assert cli("run", greedy, "Hi").code == 0
    assert greedy in [m["name"] for m in api.get("/api/ps").json()["models"]]
    result = cli("stop", greedy)
    assert (result.code, result.out, result.err) == (0, "", "")
    assert greedy not in [m["name"] for m in api.get("/api/ps").json()["models"]]


def test_stop_an_unknown_model(cli: Cli) -> None:
    result = cli("stop", "no-such-model:latest")
    assert result.code == 1
    assert result.err == "Error: model 'no-such-model:latest' not found, nothing to stop\n"


def test_cp_then_rm_of_several_names(
    cli: Cli, api: httpx.Client, scratch: Callable[[str], str]
) -> None:
    first, second = scratch("copy"), scratch("copy")
    for name in (first, second):
        result = cli("cp", DEFAULT_MODEL, name)
        assert (result.code, result.out) == (0, f"copied '{DEFAULT_MODEL}' to '{name}'\n")
    names = [line.split()[0] for line in cli("list").out.splitlines()]
    assert {first, second} <= set(names)
    result = cli("rm", first, second)
    assert result.code == 0, result.err
    assert result.out == f"deleted '{first}'\ndeleted '{second}'\n"
    listed = {m["name"] for m in api.get("/api/tags").json()["models"]}
    assert not {first, second} & listed
    assert DEFAULT_MODEL in listed


def test_rm_stops_at_the_first_unknown_name(cli: Cli, scratch: Callable[[str], str]) -> None:
    kept = scratch("copy")
    assert cli("cp", DEFAULT_MODEL, kept).code == 0
    result = cli("rm", kept, "no-such-model:latest")
    assert result.code == 1
    assert result.out == f"deleted '{kept}'\n"
    assert result.err == "Error: model 'no-such-model:latest' not found\n"


def test_cp_of_an_unknown_model(cli: Cli) -> None:
    result = cli("cp", "no-such-model:latest", "other:latest")
    assert result.code == 1
    assert result.err.startswith("Error: ") and "not found" in result.err
    assert result.err.count("\n") == 1
