"""``nexus run`` with a thinking model: the reasoning in a "Thinking..." block before the
answer, ``--hidethinking``, ``--think=false`` and ``/set think`` / ``/set nothink``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.cli.conftest import Cli
from tests.cli.helpers import Terminal
from tests.server.test_capabilities_thinking import SHOTS, TEMPLATE
from tests.support import DEFAULT_MODEL

QUESTION = "What is 4+4?"


@pytest.fixture(scope="module")
def thinker(api: httpx.Client) -> Iterator[str]:
    name = f"cli-thinker-{uuid.uuid4().hex[:8]}:latest"
    body = {
        "model": name,
        "from": DEFAULT_MODEL,
        "template": TEMPLATE,
        "messages": SHOTS,
        "parameters": {"temperature": 0, "num_predict": 40},
        "stream": False,
    }
    api.post("/api/create", json=body).raise_for_status()
    yield name
    api.request("DELETE", "/api/delete", json={"model": name})


def _reply(api: httpx.Client, model: str, think: bool) -> dict[str, str]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "think": think,
        "stream": False,
    }
    return dict(api.post("/api/chat", json=body).json()["message"])


def test_run_shows_thinking_then_the_answer(cli: Cli, api: httpx.Client, thinker: str) -> None:
    expected = _reply(api, thinker, True)
    result = cli("run", thinker, QUESTION, "--nowordwrap")
    assert result.code == 0, result.err
    out = result.out
    assert out.startswith("Thinking...\n"), out
    assert expected["thinking"] in out
    done = out.index("...done thinking.")
    assert out.index(expected["thinking"]) < done < out.rindex(expected["content"])


def test_hidethinking_and_think_false(cli: Cli, api: httpx.Client, thinker: str) -> None:
    expected = _reply(api, thinker, True)
    hidden = cli("run", thinker, QUESTION, "--hidethinking", "--nowordwrap")
    assert hidden.code == 0, hidden.err
    assert "Thinking..." not in hidden.out and expected["thinking"] not in hidden.out
    assert expected["content"] in hidden.out
    off = cli("run", thinker, QUESTION, "--think=false", "--nowordwrap")
    assert off.code == 0, off.err
    assert "Thinking..." not in off.out
    assert _reply(api, thinker, False)["content"] in off.out


def test_set_think_in_the_repl(terminal: Callable[..., Terminal], thinker: str) -> None:
    term = terminal("run", thinker, "--nowordwrap")
    term.expect(">>> ")
    term.send("/set nothink")
    term.expect("Set 'nothink' mode.")
    term.expect(">>> ")
    term.send(QUESTION)
    assert "Thinking..." not in term.expect(">>> ")
    term.send("/set think")
    term.expect("Set 'think' mode.")
    term.expect(">>> ")
    term.send(QUESTION)
    answer = term.expect(">>> ")
    assert "Thinking..." in answer and "...done thinking." in answer
    term.send("/bye")
    assert term.wait() == 0
