"""Prompt building as Ollama does it, with model templates written in Ollama's style."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nexus.template import parse, render_generate, render_prompt, tag_images
from nexus.template.prompt import collate, think_fields

# ----------------------------------------------------------------------------- fixtures

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "unit": {
                    "description": "Temperature unit",
                    "type": "string",
                    "enum": ["celsius", "fahrenheit"],
                },
                "city": {"type": "string", "description": "Name of the city"},
            },
            "required": ["city"],
        },
    },
}

# How Go marshals that tool: struct fields in declaration order, property names sorted.
WEATHER_TOOL_JSON = (
    '{"type":"function","function":{"name":"get_weather",'
    '"description":"Get the current weather for a city","parameters":{"type":"object",'
    '"required":["city"],"properties":{"city":{"type":"string","description":"Name of the city"},'
    '"unit":{"type":"string","description":"Temperature unit","enum":["celsius","fahrenheit"]}}}}}'
)

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Weather in Paris?"},
]

TOOL_CHAT = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"unit": "celsius", "city": "Paris"}}}
        ],
    },
    {"role": "tool", "content": "22°C, sunny", "tool_name": "get_weather"},
]

# ----------------------------------------------------------------------------- templates

LLAMA3 = """\
{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

You can call these functions. Reply with JSON {"name": ..., "parameters": ...} to use one.
{{- range .Tools }}

{{ json . }}
{{- end }}
{{- end }}<|eot_id|>
{{- end }}
{{- range .Messages }}
{{- if ne .Role "system" }}<|start_header_id|>{{ if eq .Role "tool" }}ipython{{ else }}{{ .Role }}{{ end }}<|end_header_id|>

{{ with .ToolCalls }}{{ range . }}{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}{{ else }}{{ .Content }}{{ end }}<|eot_id|>
{{- end }}
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""  # noqa: E501

QWEN25 = """\
{{- if or .System .Tools }}<|im_start|>system
{{ if .System }}{{ .System }}{{ else }}You are a helpful assistant.{{ end }}
{{- if .Tools }}

# Tools

Function signatures are listed inside <tools></tools>:
<tools>
{{- range .Tools }}
{{ . }}
{{- end }}
</tools>

To call a function, answer with <tool_call>{"name": ..., "arguments": {...}}</tool_call>.
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq $i (len (slice $.Messages 1)) }}
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
{{- end }}"""

MISTRAL = """\
{{- range $i, $m := .Messages }}
{{- $last := eq $i (len (slice $.Messages 1)) }}
{{- if eq .Role "user" }}
{{- if and $.Tools $last }}[AVAILABLE_TOOLS] {{ json $.Tools }}[/AVAILABLE_TOOLS]{{ end -}}
[INST] {{ if and $.System $last }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }} {{ .Content }}{{ if not $last }}</s>{{ end }}
{{- else if .ToolCalls }}[TOOL_CALLS] [
{{- range $j, $c := .ToolCalls }}{{ if $j }}, {{ end }}{"name": "{{ $c.Function.Name }}", "arguments": {{ json $c.Function.Arguments }}}
{{- end }}]</s>
{{- end }}
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ json .Content }}}[/TOOL_RESULTS]
{{- end }}
{{- end }}"""  # noqa: E501

GEMMA = """\
{{- $system := .System }}
{{- range .Messages }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if $system }}{{ $system }}

{{ $system = "" }}{{ end }}{{ .Content }}<end_of_turn>
{{ else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- end }}<start_of_turn>model
"""

PHI3 = """\
{{- if .System }}<|system|>
{{ .System }}<|end|>
{{ end }}
{{- range .Messages }}
{{- if ne .Role "system" }}<|{{ .Role }}|>
{{ .Content }}<|end|>
{{ end }}
{{- end }}<|assistant|>
"""

CHATML = """\
{{- with .System }}<|im_start|>system
{{ . }}<|im_end|>
{{ end }}
{{- range .Messages }}{{ if ne .Role "system" }}<|im_start|>{{ .Role }}
{{ if .Thinking }}<think>{{ .Thinking }}</think>
{{ end }}{{ .Content }}<|im_end|>
{{ end }}{{ end }}<|im_start|>assistant
{{ if and .IsThinkSet (not .Think) }}<think>

</think>

{{ end }}"""

# A pre-.Messages template: one turn of (system, prompt, response).
LEGACY_ALPACA = """\
{{ if .System }}{{ .System }}

{{ end }}### Instruction:
{{ .Prompt }}

### Response:
{{ .Response }}

"""


# ----------------------------------------------------------------------------- Llama 3


def test_llama3_multi_turn() -> None:
    expected = (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert render_prompt(parse(LLAMA3), messages=CHAT) == expected


def test_llama3_tools_and_tool_calls() -> None:
    expected = (
        "<|start_header_id|>system<|end_header_id|>\n\n"
        'You can call these functions. Reply with JSON {"name": ..., "parameters": ...} to use one.'
        "\n\n" + WEATHER_TOOL_JSON + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat's the weather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "get_weather", "parameters": {"city":"Paris","unit":"celsius"}}<|eot_id|>'
        "<|start_header_id|>ipython<|end_header_id|>\n\n22°C, sunny<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert render_prompt(parse(LLAMA3), messages=TOOL_CHAT, tools=[WEATHER_TOOL]) == expected


# ----------------------------------------------------------------------------- Qwen 2.5


def test_qwen25_default_system_and_multi_turn() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    # no system and no tools: no system block at all
    expected = (
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert render_prompt(parse(QWEN25), messages=messages) == expected


def test_qwen25_with_tools() -> None:
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\n"
        "Function signatures are listed inside <tools></tools>:\n<tools>\n"
        + WEATHER_TOOL_JSON
        + "\n</tools>\n\n"
        'To call a function, answer with <tool_call>{"name": ..., "arguments": {...}}</tool_call>.'
        "<|im_end|>\n"
        "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city":"Paris","unit":"celsius"}}\n'
        "</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n22°C, sunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert render_prompt(parse(QWEN25), messages=TOOL_CHAT, tools=[WEATHER_TOOL]) == expected


def test_qwen25_prefill_of_last_assistant_message_is_left_open() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Count to 3"},
        {"role": "assistant", "content": "1, 2,"},
    ]
    expected = (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nCount to 3<|im_end|>\n"
        "<|im_start|>assistant\n1, 2,"
    )
    assert render_prompt(parse(QWEN25), messages=messages) == expected


def test_qwen25_template_capabilities() -> None:
    t = parse(QWEN25)
    assert t.uses("Tools") and t.uses("Messages") and t.uses("ToolCalls")
    assert not t.uses("Suffix")


# ----------------------------------------------------------------------------- Mistral


def test_mistral_system_goes_into_last_user_turn() -> None:
    expected = "[INST] Hi[/INST] Hello!</s>[INST] You are terse.\n\nWeather in Paris?[/INST]"
    assert render_prompt(parse(MISTRAL), messages=CHAT) == expected


def test_mistral_tool_round_trip() -> None:
    messages = [
        *TOOL_CHAT,
        {"role": "assistant", "content": "It is 22°C & sunny."},
        {"role": "user", "content": "Thanks <3"},
    ]
    expected = (
        "[INST] What's the weather in Paris?[/INST]"
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris","unit":"celsius"}}]</s>'
        '[TOOL_RESULTS] {"content": "22°C, sunny"}[/TOOL_RESULTS]'
        " It is 22°C & sunny.</s>"
        "[AVAILABLE_TOOLS] [" + WEATHER_TOOL_JSON + "][/AVAILABLE_TOOLS]"
        "[INST] Thanks <3[/INST]"
    )
    assert render_prompt(parse(MISTRAL), messages=messages, tools=[WEATHER_TOOL]) == expected


# ----------------------------------------------------------------------------- Gemma


def test_gemma_folds_system_into_first_user_turn() -> None:
    expected = (
        "<start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nWeather in Paris?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert render_prompt(parse(GEMMA), messages=CHAT) == expected


def test_gemma_merges_consecutive_user_messages() -> None:
    messages = [
        {"role": "user", "content": "First part."},
        {"role": "user", "content": "Second part."},
    ]
    expected = (
        "<start_of_turn>user\nFirst part.\n\nSecond part.<end_of_turn>\n<start_of_turn>model\n"
    )
    assert render_prompt(parse(GEMMA), messages=messages) == expected


# ----------------------------------------------------------------------------- Phi-3


def test_phi3_joins_all_system_messages() -> None:
    messages = [
        {"role": "system", "content": "Rule one."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "Rule two."},
        {"role": "user", "content": "Go"},
    ]
    expected = (
        "<|system|>\nRule one.\n\nRule two.<|end|>\n"
        "<|user|>\nHi<|end|>\n<|user|>\nGo<|end|>\n<|assistant|>\n"
    )
    assert render_prompt(parse(PHI3), messages=messages) == expected


# ----------------------------------------------------------------------------- ChatML


def test_chatml_multi_turn_with_thinking_history() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "thinking": "add them"},
        {"role": "user", "content": "3+3?"},
    ]
    expected = (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>add them</think>\n4<|im_end|>\n"
        "<|im_start|>user\n3+3?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert render_prompt(parse(CHATML), messages=messages) == expected
    # think explicitly off: the template closes an empty thought
    no_think = render_prompt(parse(CHATML), messages=messages, think=False)
    assert no_think == expected + "<think>\n\n</think>\n\n"
    assert render_prompt(parse(CHATML), messages=messages, think=True) == expected


# ----------------------------------------------------------------------------- legacy


def test_legacy_template_folds_a_chat_into_turns() -> None:
    expected = (
        "You are terse.\n\n### Instruction:\nHi\n\n### Response:\nHello!\n\n"
        "### Instruction:\nWeather in Paris?\n\n### Response:\n"
    )
    assert render_prompt(parse(LEGACY_ALPACA), messages=CHAT) == expected


def test_legacy_last_assistant_message_is_continued() -> None:
    messages = [*CHAT, {"role": "assistant", "content": "It is"}]
    expected = (
        "You are terse.\n\n### Instruction:\nHi\n\n### Response:\nHello!\n\n"
        "### Instruction:\nWeather in Paris?\n\n### Response:\nIt is"
    )
    assert render_prompt(parse(LEGACY_ALPACA), messages=messages) == expected


def test_legacy_system_message_starts_a_new_turn() -> None:
    t = parse("{{ if .System }}<sys>{{ .System }}</sys>{{ end }}[{{ .Prompt }}]{{ .Response }}|")
    messages = [
        {"role": "user", "content": "a"},
        {"role": "system", "content": "S"},
        {"role": "user", "content": "b"},
    ]
    assert render_prompt(t, messages=messages) == "[a]|<sys>S</sys>[b]"


def test_legacy_template_without_response_gets_it_appended() -> None:
    t = parse("{{ .System }} USER: {{ .Prompt }} ASSISTANT:")
    expected = "You are terse. USER: Hi ASSISTANT:Hello! USER: Weather in Paris? ASSISTANT:"
    assert render_prompt(t, messages=CHAT) == expected


def test_legacy_ignores_tools() -> None:
    t = parse("{{ .Prompt }}")
    out = render_prompt(t, messages=[{"role": "user", "content": "x"}], tools=[WEATHER_TOOL])
    assert out == "x"


# ----------------------------------------------------------------------------- generate


def test_generate_renders_like_a_chat() -> None:
    out = render_generate(parse(CHATML), system="Sys", prompt="Hello")
    assert out == (
        "<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_generate_with_history_and_images() -> None:
    t = parse("{{ range .Messages }}{{ .Role }}:{{ .Content }}:{{ len .Images }};{{ end }}")
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    out = render_generate(t, system=None, prompt="c", messages=history, images=["aW1n"])
    assert out == "user:a:0;assistant:b:0;user:c:1;"


def test_generate_default_template() -> None:
    t = parse("{{ .Prompt }}")
    assert render_generate(t, system="ignored by template", prompt="just this") == "just this"


FIM = """\
{{- if .Suffix }}<fim_prefix>{{ .Prompt }}<fim_suffix>{{ .Suffix }}<fim_middle>
{{- else }}{{ .Prompt }}
{{- end }}"""


def test_generate_with_suffix_uses_fill_in_the_middle() -> None:
    t = parse(FIM)
    assert t.uses("Suffix")
    out = render_generate(t, system="sys", prompt="def add(a, b):", suffix="    return c")
    assert out == "<fim_prefix>def add(a, b):<fim_suffix>    return c<fim_middle>"
    assert render_generate(t, system=None, prompt="plain") == "plain"


def test_chat_with_suffix_uses_the_last_user_message() -> None:
    out = render_prompt(parse(FIM), messages=[{"role": "user", "content": "x = "}], suffix="\n")
    assert out == "<fim_prefix>x = <fim_suffix>\n<fim_middle>"


# ----------------------------------------------------------------------------- data shape


def test_message_fields_available_to_templates() -> None:
    t = parse(
        "{{ range .Messages }}{{ .Role }}|{{ .Content }}|{{ .Thinking }}|{{ .ToolName }}|"
        "{{ .ToolCallID }}|{{ range .ToolCalls }}{{ .ID }},{{ .Function.Index }},"
        "{{ .Function.Name }},{{ .Function.Arguments }}{{ end }}\n{{ end }}"
    )
    call = {
        "id": "call_1",
        "function": {"index": 2, "name": "f", "arguments": '{"b": 1, "a": [1]}'},
    }
    messages = [
        {"role": "ASSISTANT", "content": "", "thinking": "hmm", "tool_calls": [call]},
        {"role": "tool", "content": "r1", "tool_name": "f", "tool_call_id": "call_1"},
        {"role": "tool", "content": "r2", "tool_name": "f"},
    ]
    assert render_prompt(t, messages=messages) == (
        'assistant||hmm|||call_1,2,f,{"a":[1],"b":1}\ntool|r1||f|call_1|\ntool|r2||f||\n'
    )


def test_tool_arguments_can_be_ranged_in_key_order() -> None:
    t = parse(
        "{{ range .Messages }}{{ range .ToolCalls }}{{ range $k, $v := .Function.Arguments }}"
        "{{ $k }}={{ $v }};{{ end }}{{ end }}{{ end }}"
    )
    messages = [{"role": "assistant", "tool_calls": [
        {"function": {"name": "f", "arguments": {"z": 1, "a": "x", "big": 2000000}}},
    ]}]  # fmt: skip
    # numbers decode to float64 in Ollama, so big ones print in exponent form
    assert render_prompt(t, messages=messages) == "a=x;big=2e+06;z=1;"


def test_tools_print_as_json_and_expose_go_fields() -> None:
    t = parse(
        "{{ range .Messages }}{{ end }}{{ .Tools }}\n{{ range .Tools }}{{ .Type }} "
        "{{ .Function.Name }} {{ .Function.Parameters.Type }} {{ .Function.Parameters.Required }}"
        "{{ range $name, $p := .Function.Parameters.Properties }} {{ $name }}:{{ $p.Type }}:"
        "{{ toTypeScriptType $p }}{{ with $p.Enum }}:{{ json . }}{{ end }}{{ end }}{{ end }}"
    )
    out = render_prompt(t, messages=[{"role": "user", "content": "x"}], tools=[WEATHER_TOOL])
    first, second = out.split("\n")
    assert json.loads(first) == [json.loads(WEATHER_TOOL_JSON)]
    assert first == "[" + WEATHER_TOOL_JSON + "]"
    assert second == (
        "function get_weather object [city] city:string:string"
        ' unit:string:string:["celsius","fahrenheit"]'
    )


def test_to_typescript_type_of_tool_properties() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer"},
                    "b": {"type": ["string", "null"]},
                    "c": {"anyOf": [{"type": "boolean"}, {"type": "array"}]},
                    "d": {"description": "untyped"},
                    "e": {"type": "object"},
                },
            },
        },
    }
    t = parse(
        "{{ range .Messages }}{{ end }}{{ range .Tools }}{{ range $n, $p := "
        ".Function.Parameters.Properties }}{{ $n }}: {{ toTypeScriptType $p }}\n{{ end }}{{ end }}"
    )
    assert render_prompt(t, messages=[], tools=[tool]) == (
        "a: number\nb: string | null\nc: boolean | any[]\nd: any\ne: Record<string, any>\n"
    )


def test_tool_without_properties_marshals_null_properties() -> None:
    t = parse("{{ range .Messages }}{{ end }}{{ range .Tools }}{{ . }}{{ end }}")
    tool = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
    assert render_prompt(t, messages=[], tools=[tool]) == (
        '{"type":"function","function":{"name":"now","description":"",'
        '"parameters":{"type":"object","properties":null}}}'
    )


def test_no_tools_is_nil_and_empty_tools_is_false() -> None:
    t = parse("{{ range .Messages }}{{ end }}{{ if .Tools }}tools{{ else }}none{{ end }}")
    assert render_prompt(t, messages=[]) == "none"
    assert render_prompt(t, messages=[], tools=[]) == "none"
    assert render_prompt(t, messages=[], tools=[WEATHER_TOOL]) == "tools"


def test_collate() -> None:
    system, merged = collate(
        [
            {"role": "system", "content": "A"},
            {"role": "system", "content": "B"},
            {"role": "user", "content": "u1"},
            {"role": "user", "content": "u2"},
            {"role": "tool", "content": "t1", "tool_name": "x"},
            {"role": "tool", "content": "t2", "tool_name": "y"},
        ]
    )
    assert system == "A\n\nB"
    assert [(m["role"], m["content"]) for m in merged] == [
        ("system", "A\n\nB"),
        ("user", "u1\n\nu2"),
        ("tool", "t1"),
        ("tool", "t2"),
    ]
    assert [m.get("tool_name") for m in merged[2:]] == ["x", "y"]


def test_collate_does_not_mutate_input() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    collate(messages)
    assert messages[0]["content"] == "a"


@pytest.mark.parametrize(
    ("think", "expected"),
    [
        (None, {"Think": False, "ThinkLevel": "", "IsThinkSet": False}),
        (True, {"Think": True, "ThinkLevel": "medium", "IsThinkSet": True}),
        (False, {"Think": False, "ThinkLevel": "", "IsThinkSet": True}),
        ("high", {"Think": True, "ThinkLevel": "high", "IsThinkSet": True}),
    ],
)
def test_think_fields(think: bool | str | None, expected: dict[str, Any]) -> None:
    assert think_fields(think) == expected
    t = parse("{{ range .Messages }}{{ end }}{{ .Think }}/{{ .ThinkLevel }}/{{ .IsThinkSet }}")
    assert render_prompt(t, messages=[], think=think) == (
        f"{str(expected['Think']).lower()}/{expected['ThinkLevel']}/"
        f"{str(expected['IsThinkSet']).lower()}"
    )


def test_tag_images() -> None:
    messages = [
        {"role": "user", "content": "old", "images": ["x"]},
        {"role": "user", "content": "see [img] and [img]", "images": ["a", "b"]},
        {"role": "user", "content": "two", "images": ["c", "d"]},
        {"role": "assistant", "content": "no images"},
    ]
    tagged = tag_images(messages, start=1)
    assert [m["content"] for m in tagged] == [
        "old",
        "see [img-0] and [img-1]",
        "[img-2][img-3]two",
        "no images",
    ]
    assert messages[1]["content"] == "see [img] and [img]"
