"""run, one-shot: a prompt argument, piped input, --verbose, --format json, --keepalive."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.cli.conftest import Cli

PROMPT = "Why is the sky blue?"
STATS = [
    r"total duration:       \S+",
    r"load duration:        \S+",
    r"prompt eval count:    \d+ token\(s\)",
    r"prompt eval duration: \S+",
    r"prompt eval rate:     \d+\.\d\d tokens/s",
    r"eval count:           \d+ token\(s\)",
    r"eval duration:        \S+",
    r"eval rate:            \d+\.\d\d tokens/s",
]


def _generate(api: httpx.Client, model: str, prompt: str, **extra: Any) -> str:
    body = {"model": model, "prompt": prompt, "stream": False, **extra}
    response = api.post("/api/generate", json=body)
    response.raise_for_status()
    return str(response.json()["response"])


def test_a_prompt_argument_streams_the_answer(cli: Cli, api: httpx.Client, greedy: str) -> None:
    expected = _generate(api, greedy, PROMPT)
    assert expected
    result = cli("run", greedy, PROMPT)
    assert result.code == 0, result.err
    assert result.out == expected + "\n\n"
    assert result.err == ""


def test_words_of_the_prompt_are_joined(cli: Cli, api: httpx.Client, greedy: str) -> None:
    result = cli("run", greedy, "Why", "is", "the", "sky", "blue?")
    assert result.out == _generate(api, greedy, PROMPT) + "\n\n"


def test_piped_input_is_the_prompt(cli: Cli, api: httpx.Client, greedy: str) -> None:
    result = cli("run", greedy, stdin=PROMPT)
    assert result.code == 0, result.err
    assert result.out == _generate(api, greedy, PROMPT) + "\n\n"
    # Piped text comes first, then the arguments.
    both = cli("run", greedy, "Answer briefly.", stdin="Why is grass green?\n")
    assert both.out == _generate(api, greedy, "Why is grass green?\n Answer briefly.") + "\n\n"


def test_verbose_prints_the_timings_on_stderr(cli: Cli, api: httpx.Client, greedy: str) -> None:
    result = cli("run", greedy, PROMPT, "--verbose")
    assert result.code == 0, result.err
    assert result.out == _generate(api, greedy, PROMPT) + "\n\n"
    lines = result.err.splitlines()
    # load duration is left out when the model was already loaded (it may be zero).
    expected = [p for p in STATS if not p.startswith("load") or "load duration" in result.err]
    assert len(lines) == len(expected), result.err
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), line
    durations = [line.split()[-1] for line in lines if "duration" in line]
    assert all(re.fullmatch(r"[\d.]+(ns|µs|ms|s)|\d+m[\d.]+s", d) for d in durations), durations


def test_format_json(cli: Cli, api: httpx.Client, greedy: str) -> None:
    prompt = "Describe a cat as JSON with keys name and color."
    result = cli("run", greedy, prompt, "--format", "json")
    assert result.code == 0, result.err
    expected = _generate(api, greedy, prompt, format="json")
    assert result.out == expected + "\n\n"
    assert result.out.lstrip().startswith("{")


def test_format_schema(cli: Cli, api: httpx.Client, greedy: str) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    result = cli("run", greedy, "Pick a number.", "--format", json.dumps(schema))
    assert result.code == 0, result.err
    assert result.out == _generate(api, greedy, "Pick a number.", format=schema) + "\n\n"


def test_keepalive_sets_how_long_the_model_stays(cli: Cli, greedy: str) -> None:
    assert cli("run", greedy, "Hi", "--keepalive", "10m").code == 0
    assert re.search(r"(9|10) minutes from now", cli("ps", greedy).out)
    assert cli("run", greedy, "Hi", "--keepalive", "-1m").code == 0
    assert cli("ps", greedy).out.splitlines()[1].endswith("Forever")
    bad = cli("run", greedy, "Hi", "--keepalive", "10")
    assert (bad.code, bad.out) == (1, "")
    assert bad.err == 'Error: time: missing unit in duration "10"\n'


def test_run_bad_format(cli: Cli, greedy: str) -> None:
    result = cli("run", greedy, "Hi", "--format", "yaml")
    assert result.code == 1
    assert result.err.startswith('Error: invalid format "yaml"')
