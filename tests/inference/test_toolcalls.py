"""Reading tool calls back from model output, per model family, whole and streamed."""

from __future__ import annotations

import json
import random
import re
from types import SimpleNamespace
from typing import Any, cast

import pytest

from nexus.inference.models import Model
from nexus.inference.toolcalls import (
    FUNCTOOLS,
    GEMMA,
    GENERIC,
    HERMES,
    LLAMA,
    MISTRAL,
    PHI,
    CallFormat,
    ToolCallParser,
    call_format_for,
    format_for_jinja,
    format_for_tag,
    parse_call,
    tag_from_template_text,
    tool_parser_for,
)
from nexus.template import parse

Call = tuple[int, str, dict[str, Any]]
ID_RE = re.compile(r"call_[a-z0-9]{8}")
PARIS = {"city": "Paris"}


def run(fmt: CallFormat, chunks: list[str]) -> tuple[str, list[Call]]:
    """Feed ``chunks`` one by one, then finish: all content, and the calls as tuples."""
    parser = ToolCallParser(fmt)
    content: list[str] = []
    calls: list[dict[str, Any]] = []
    for chunk in chunks:
        text, found = parser.feed(chunk)
        content.append(text)
        calls.extend(found)
    text, found = parser.finish()
    content.append(text)
    calls.extend(found)
    for call in calls:
        assert ID_RE.fullmatch(call["id"]), call
        assert isinstance(call["function"]["arguments"], dict)
        assert set(call) == {"id", "function"}
    return "".join(content), [
        (c["function"]["index"], c["function"]["name"], c["function"]["arguments"]) for c in calls
    ]


def splits(text: str, seed: int) -> list[list[str]]:
    """Ways to cut ``text`` into chunks: at every single point, per character, and at
    random into small pieces."""
    ways = [[text[:i], text[i:]] for i in range(len(text) + 1)]
    ways.append(list(text))
    rng = random.Random(seed)
    for _ in range(40):
        pieces, i = [], 0
        while i < len(text):
            size = rng.randint(1, 6)
            pieces.append(text[i : i + size])
            i += size
        ways.append(pieces)
    return ways


def check(fmt: CallFormat, output: str, content: str, calls: list[Call]) -> None:
    """The whole output gives ``content`` and ``calls``, and so does every way of
    streaming it."""
    assert run(fmt, [output]) == (content, calls)
    for n, chunks in enumerate(splits(output, seed=len(output))):
        assert run(fmt, chunks) == (content, calls), (n, chunks)


# ----------------------------------------------------------------------------- families

CASES: list[tuple[str, CallFormat, str, str, list[Call]]] = [
    # Hermes / Qwen 2.5 / SmolLM2
    (
        "hermes",
        HERMES,
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "",
        [(0, "get_weather", PARIS)],
    ),
    (
        "hermes text first",
        HERMES,
        'Let me look.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "</tool_call>",
        "Let me look.\n",
        [(0, "get_weather", PARIS)],
    ),
    (
        "hermes two tags",
        HERMES,
        '<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": {}}</tool_call>',
        "",
        [(0, "a", {"x": 1}), (1, "b", {})],
    ),
    (
        "hermes list in one tag",
        HERMES,
        '<tool_call>[{"name": "a", "arguments": {"x": "}"}}, {"name": "b", "arguments": {}}]'
        "</tool_call>",
        "",
        [(0, "a", {"x": "}"}), (1, "b", {})],
    ),
    (
        "qwen lines in one tag",
        HERMES,
        '<tool_call>\n{"name": "a", "arguments": {"q": "x\\"y"}}\n{"name": "b", "arguments": {}}'
        "\n</tool_call>",
        "",
        [(0, "a", {"q": 'x"y'}), (1, "b", {})],
    ),
    (
        "hermes arguments as a string",
        HERMES,
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}</tool_call>',
        "",
        [(0, "get_weather", PARIS)],
    ),
    (
        "hermes unclosed at the end",
        HERMES,
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}',
        "",
        [(0, "get_weather", PARIS)],
    ),
    (
        "hermes broken JSON stays text",
        HERMES,
        "<tool_call>{not json}</tool_call> ok",
        "<tool_call>{not json}</tool_call> ok",
        [],
    ),
    (
        "qwen3-coder XML in the tag",
        HERMES,
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
        "",
        [(0, "get_weather", {"city": "Paris", "days": 3})],
    ),
    ("plain text", HERMES, "The weather in Paris is <b>sunny</b>.", None, []),
    # Llama 3.1 / 3.2
    (
        "llama bare JSON",
        LLAMA,
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
        [(0, "get_weather", PARIS)],
    ),
    (
        "llama leading space",
        LLAMA,
        '\n {"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
        [(0, "get_weather", PARIS)],
    ),
    (
        "llama several calls",
        LLAMA,
        '{"name": "a", "parameters": {"n": [1, 2]}}; {"name": "b", "parameters": {}}\n',
        "",
        [(0, "a", {"n": [1, 2]}), (1, "b", {})],
    ),
    (
        "llama python tag",
        LLAMA,
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
        [(0, "get_weather", PARIS)],
    ),
    (
        "llama JSON answer is content",
        LLAMA,
        '{"city": "Paris", "temperature": 21}',
        None,
        [],
    ),
    (
        "llama JSON later in the text is content",
        LLAMA,
        'Here: {"name": "get_weather", "parameters": {}}',
        None,
        [],
    ),
    ("llama brace never closed", LLAMA, '{"name": "get_weather", "param', None, []),
    # Mistral
    (
        "mistral list",
        MISTRAL,
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, '
        '{"name": "b", "arguments": {}}]',
        "",
        [(0, "get_weather", PARIS), (1, "b", {})],
    ),
    (
        "mistral ARGS",
        MISTRAL,
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]b[ARGS]{}',
        "",
        [(0, "get_weather", PARIS), (1, "b", {})],
    ),
    (
        "mistral CALL_ID",
        MISTRAL,
        'Checking. [TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS] {"city": "Paris"}',
        "Checking. ",
        [(0, "get_weather", PARIS)],
    ),
    ("mistral tag as words", MISTRAL, "Use [TOOL_CALLS] to call tools.", None, []),
    # Phi-4-mini / functools
    (
        "functools",
        FUNCTOOLS,
        'functools[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
        '{"name": "b", "arguments": {}}]',
        "",
        [(0, "get_weather", PARIS), (1, "b", {})],
    ),
    ("functools in prose", FUNCTOOLS, "import functools; functools.partial(f)", None, []),
    (
        "phi tool_call tag",
        PHI,
        '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|>',
        "",
        [(0, "get_weather", PARIS)],
    ),
    # Gemma
    (
        "gemma tool_code",
        GEMMA,
        'I will check.\n```tool_code\nget_weather(city="Paris", days=[1, 2])\n```',
        "I will check.\n",
        [(0, "get_weather", {"city": "Paris", "days": [1, 2]})],
    ),
    (
        "gemma print(default_api...)",
        GEMMA,
        "```tool_code\nprint(default_api.get_weather(city='Paris'))\n```\nDone.",
        "\nDone.",
        [(0, "get_weather", PARIS)],
    ),
    ("gemma other code block", GEMMA, "```python\nprint(1)\n```", None, []),
    # Generic: what Nexus's tools prompt teaches, and bare JSON
    (
        "generic tag",
        GENERIC,
        'OK <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
        "OK ",
        [(0, "get_weather", PARIS)],
    ),
    (
        "generic bare JSON",
        GENERIC,
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        "",
        [(0, "get_weather", PARIS)],
    ),
    ("generic JSON answer", GENERIC, '[{"name": "Ann", "age": 3}]', None, []),
    ("generic list of numbers", GENERIC, "[1, 2, 3] are numbers", None, []),
]


@pytest.mark.parametrize(
    ("fmt", "output", "content", "calls"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_family_output(
    fmt: CallFormat, output: str, content: str | None, calls: list[Call]
) -> None:
    check(fmt, output, output if content is None else content, calls)


def test_text_goes_out_at_once() -> None:
    parser = ToolCallParser(HERMES)
    assert parser.feed("The weather ") == ("The weather ", [])
    assert parser.feed("is <tool") == ("is ", [])  # only what may start a tag is held
    assert parser.feed("kit>") == ("<toolkit>", [])


def test_call_is_held_until_complete() -> None:
    text = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    parser = ToolCallParser(HERMES)
    assert parser.feed(text[:-1]) == ("", [])
    content, calls = parser.feed(text[-1])
    assert content == ""
    assert [c["function"]["name"] for c in calls] == ["get_weather"]


def test_bare_json_call_is_held_until_complete() -> None:
    parser = ToolCallParser(LLAMA)
    assert parser.feed(" {") == ("", [])
    assert parser.feed('"na') == ("", [])
    assert parser.feed('me": "get_weather", "parameters": {') == ("", [])
    content, calls = parser.feed('"city": "Paris"}}')
    assert content == ""
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("get_weather", PARIS)
    ]


def test_bare_json_that_is_no_call_is_released_early() -> None:
    parser = ToolCallParser(LLAMA)
    assert parser.feed('{"ci') == ('{"ci', [])  # no key of a call starts like that
    assert parser.feed('ty": "Paris"}') == ('ty": "Paris"}', [])


@pytest.mark.parametrize("fmt", [LLAMA, MISTRAL, HERMES, FUNCTOOLS], ids=lambda f: f.name)
def test_long_call_streamed_per_character(fmt: CallFormat) -> None:
    arguments = {"text": 'a "quoted" {brace} [bracket] \\ ' * 300}
    call = json.dumps({"name": "write", "arguments": arguments})
    output = {
        "llama": call,
        "mistral": "[TOOL_CALLS]write[ARGS]" + json.dumps(arguments),
        "hermes": f"<tool_call>{call}</tool_call>",
        "functools": f"functools[{call}]",
    }[fmt.name]
    assert run(fmt, list(output)) == ("", [(0, "write", arguments)])


def test_indexes_keep_counting_across_feeds() -> None:
    parser = ToolCallParser(HERMES)
    _, first = parser.feed('<tool_call>{"name": "a", "arguments": {}}</tool_call>')
    _, second = parser.feed('<tool_call>{"name": "b", "arguments": {}}</tool_call>')
    assert [c["function"]["index"] for c in first + second] == [0, 1]
    assert first[0]["id"] != second[0]["id"]


def test_default_parser_is_generic() -> None:
    assert ToolCallParser().format == GENERIC


def test_parse_call_for_forced_output() -> None:
    call = parse_call('{"name": "get_weather", "arguments": {"city": "Paris"}}', 2)
    assert call is not None
    assert call["function"] == {"index": 2, "name": "get_weather", "arguments": PARIS}
    assert parse_call('{"name": "x", "arguments": [1]}', 0) is None
    assert parse_call("not json", 0) is None


# ----------------------------------------------------------------------------- choosing

# Go templates written in the style of Ollama's library models.
LLAMA31_GO = """\
{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{ if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}
Answer a call as {"name": function name, "parameters": dictionary of arguments}.
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}

{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}"""  # noqa: E501

QWEN25_GO = """\
{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

Return each call inside <tool_call></tool_call> tags.
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""

MISTRAL_GO = """\
{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and (eq (len (slice $.Messages $index)) 1) $.Tools }}[AVAILABLE_TOOLS] {{ $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }} {{ .Content }}
{{- else if .ToolCalls }}[TOOL_CALLS] [
{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{- end }}]
{{- end }}</s>
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}} [/TOOL_RESULTS]
{{- end }}
{{- end }}"""  # noqa: E501

NO_TOOLS_GO = "{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}{{ end }}<|assistant|>"

# GGUF Jinja chat templates, abridged to the parts that show each family's call format.
LLAMA31_JINJA = (
    "{{- bos_token }}{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}"
    "{%- for message in messages %}{%- if 'tool_calls' in message %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    "{%- if builtin_tools is defined and tool_call.name in builtin_tools %}"
    "{{- '<|python_tag|>' + tool_call.name + '.call(' }}{%- else %}"
    '{{- \'{"name": "\' + tool_call.name + \'", "parameters": \' + tool_call.arguments | tojson'
    " + '}' }}{%- endif %}{%- endif %}{%- endfor %}"
)
QWEN25_JINJA = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- for tool in tools %}"
    "{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    '{{- \'\\n</tools>\\n\\n<tool_call>\\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\\n</tool_call><|im_end|>\\n' }}{%- endif %}"
)
MISTRAL_JINJA = (
    "{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
    "{%- if tools is not none and (message == user_messages[-1]) %}"
    "{{- '[AVAILABLE_TOOLS] [' }}{%- endif %}{{- '[INST] ' + message['content'] + '[/INST]' }}"
    "{%- elif message.tool_calls is defined and message.tool_calls is not none %}"
    "{{- '[TOOL_CALLS] [' }}{%- endif %}{%- endfor %}"
)
PHI4_MINI_JINJA = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message %}"
    "{{ '<|system|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + "
    "'<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
SMOLLM2_JINJA = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def model(go: str | None = None, jinja: str | None = None, architecture: str = "llama") -> Model:
    gguf = SimpleNamespace(chat_template=jinja, architecture=architecture)
    return cast(Model, SimpleNamespace(template=None if go is None else parse(go), gguf=gguf))


@pytest.mark.parametrize(
    ("go", "tag", "fmt"),
    [
        (LLAMA31_GO, "{", LLAMA),
        (QWEN25_GO, "<tool_call>", HERMES),
        (MISTRAL_GO, "[TOOL_CALLS] [", MISTRAL),
    ],
    ids=["llama3.1", "qwen2.5", "mistral"],
)
def test_tag_from_go_template(go: str, tag: str, fmt: CallFormat) -> None:
    text = parse(go).tool_call_text()
    assert text is not None
    assert tag_from_template_text(text) == tag
    assert format_for_tag(tag) == fmt
    assert call_format_for(model(go, jinja=SMOLLM2_JINJA)) == fmt


def test_go_template_decides_over_jinja() -> None:
    # A Qwen-style Go template on a model whose GGUF says Mistral: the Go template wins.
    parser = tool_parser_for(model(QWEN25_GO, jinja=MISTRAL_JINJA))
    assert parser.format == HERMES


def test_parsers_chosen_from_go_templates_read_their_family() -> None:
    outputs = {
        LLAMA31_GO: '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        QWEN25_GO: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        "</tool_call>",
        MISTRAL_GO: '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]',
    }
    for go, output in outputs.items():
        parser = tool_parser_for(model(go))
        content, calls = parser.feed(output)
        rest, more = parser.finish()
        assert content + rest == ""
        assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls + more] == [
            ("get_weather", PARIS)
        ]


@pytest.mark.parametrize(
    ("jinja", "family"),
    [
        (LLAMA31_JINJA, "llama"),
        (QWEN25_JINJA, "hermes"),
        (MISTRAL_JINJA, "mistral"),
        (PHI4_MINI_JINJA, "phi"),
        (SMOLLM2_JINJA, "generic"),
    ],
    ids=["llama3.1", "qwen2.5", "mistral", "phi4-mini", "smollm2"],
)
def test_format_from_gguf_jinja(jinja: str, family: str) -> None:
    fmt = call_format_for(model(jinja=jinja))
    assert fmt.name == family
    # Without a Go template the tools prompt asks for <tool_call>: that is read too.
    assert "<tool_call>" in [t.open for t in fmt.tags]
    assert fmt.bare_json


def test_jinja_families_read_native_and_generic_calls() -> None:
    fmt = call_format_for(model(jinja=MISTRAL_JINJA))
    check(
        fmt,
        '[TOOL_CALLS] [{"name": "a", "arguments": {}}]',
        "",
        [(0, "a", {})],
    )
    check(fmt, '<tool_call>{"name": "a", "arguments": {}}</tool_call>', "", [(0, "a", {})])
    assert format_for_jinja(SMOLLM2_JINJA) is None


def test_go_template_without_tool_calls_falls_back() -> None:
    assert parse(NO_TOOLS_GO).tool_call_text() is None
    assert call_format_for(model(NO_TOOLS_GO, jinja=QWEN25_JINJA)).name == "hermes"
    assert call_format_for(model(NO_TOOLS_GO)).name == "llama"  # from the architecture
    assert call_format_for(model(architecture="bert")) == GENERIC


def test_unknown_tag_gets_its_own_parser() -> None:
    go = (
        "{{ range .Messages }}{{ if .ToolCalls }}<|tool_calls|>["
        '{{ range .ToolCalls }}{"name": "{{ .Function.Name }}"}{{ end }}]<|/tool_calls|>'
        "{{ else }}{{ .Content }}{{ end }}{{ end }}"
    )
    fmt = call_format_for(model(go))
    assert [(t.open, t.close) for t in fmt.tags] == [("<|tool_calls|>", "<|/tool_calls|>")]
    check(
        fmt,
        'Sure <|tool_calls|>[{"name": "a", "arguments": {"k": true}}]<|/tool_calls|>',
        "Sure ",
        [(0, "a", {"k": True})],
    )
