"""The interactive chat of ``run``, driven through a pseudo-terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.cli.helpers import Terminal


def _chat(api: httpx.Client, model: str, messages: list[dict[str, str]], **options: Any) -> str:
    body = {"model": model, "messages": messages, "stream": False, "options": options}
    response = api.post("/api/chat", json=body)
    response.raise_for_status()
    return str(response.json()["message"]["content"])


def test_a_chat_with_parameters_multiline_and_save(
    terminal: Callable[..., Terminal],
    api: httpx.Client,
    greedy: str,
    scratch: Callable[[str], str],
) -> None:
    term = terminal("run", greedy, "--nowordwrap")
    term.expect(">>> ")
    term.send("/set parameter num_predict 5")
    term.expect("Set parameter 'num_predict' to '5'")
    term.expect(">>> ")

    term.send("Hello there")
    answer = term.expect(">>> ")
    expected = _chat(api, greedy, [{"role": "user", "content": "Hello there"}], num_predict=5)
    assert expected and expected in answer

    term.send("/show parameters")
    shown = term.expect(">>> ")
    assert "temperature" in shown  # from the model
    assert "num_predict                    5" in shown  # set in this session

    term.send('"""First line')
    term.expect("... ")
    term.send('second line"""')
    term.expect(">>> ")

    term.send("/set system Be brief.")
    term.expect("System message set.")
    term.expect(">>> ")
    term.send("/show system")
    assert "Be brief." in term.expect(">>> ")

    saved = scratch("saved")
    term.send(f"/save {saved}")
    term.expect(f"Saved this session as '{saved}'.")
    term.expect(">>> ")
    term.send("/bye")
    assert term.wait() == 0

    info = api.post("/api/show", json={"model": saved}).json()
    contents = [m["content"] for m in info.get("messages", [])]
    assert contents[0] == "Hello there"
    assert "First line\nsecond line" in contents
    assert info["system"] == "Be brief."


def test_clear_unknown_commands_and_help(terminal: Callable[..., Terminal], greedy: str) -> None:
    term = terminal("run", greedy)
    term.expect(">>> ")
    term.send("/clear")
    term.expect("Conversation cleared.")
    term.expect(">>> ")
    term.send("/nonsense")
    term.expect("Unknown command '/nonsense' (/? lists the commands)")
    term.expect(">>> ")
    term.send("/?")
    assert "/bye" in term.expect(">>> ")
    term.send("/show info")
    assert "architecture" in term.expect(">>> ")
    term.send("/show modelfile")
    assert "FROM " in term.expect(">>> ")
    term.send("/load no-such-model")
    term.expect("Model 'no-such-model' not found.")
    term.expect(">>> ")
    term.send("/exit")
    assert term.wait() == 0


def test_ctrl_c_stops_the_answer_not_the_chat(
    terminal: Callable[..., Terminal], greedy: str
) -> None:
    term = terminal("run", greedy, "--nowordwrap")
    term.expect(">>> ")
    term.send("/set parameter num_predict 400")
    term.expect(">>> ")
    term.send("Write a long story about a lighthouse.")
    term.expect("lighthouse.\n")
    term.wait_for_output()
    term.interrupt()
    term.expect(">>> ")
    assert term.proc.poll() is None  # still chatting
    term.send("/set parameter num_predict 3")
    term.expect(">>> ")
    term.send("Hi")
    term.expect(">>> ")
    term.end_of_input()  # Ctrl-D leaves like /bye
    assert term.wait() == 0
