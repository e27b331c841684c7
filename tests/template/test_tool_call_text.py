"""``Template.tool_call_text``: the literal text a template writes before tool calls."""

from __future__ import annotations

import pytest

from nexus.template import parse


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # if .ToolCalls, text right inside it
        (
            "{{ range .Messages }}{{ if .ToolCalls }}<tool_call>\n{{ range .ToolCalls }}"
            "{{ .Function.Name }}{{ end }}</tool_call>{{ end }}{{ end }}",
            "<tool_call>\n",
        ),
        # else if: a nested if in the else branch
        (
            "{{ range .Messages }}{{ if .Content }}{{ .Content }}{{ else if .ToolCalls }}"
            "[TOOL_CALLS] [{{ range .ToolCalls }}{{ json .Function }}{{ end }}]{{ end }}{{ end }}",
            "[TOOL_CALLS] [",
        ),
        # whitespace-only text is skipped; the search goes into the range over the calls
        (
            "{{ range .Messages }}{{- if .ToolCalls }}\n\n{{ range .ToolCalls }}"
            '{"name": "{{ .Function.Name }}"}{{ end }}{{ end }}{{ end }}',
            '{"name": "',
        ),
        # with / range over the calls, through a variable
        (
            "{{ range $m := .Messages }}{{ with $m.ToolCalls }}<calls>{{ . }}{{ end }}{{ end }}",
            "<calls>",
        ),
        (
            "{{ range .Messages }}{{ range .ToolCalls }}functools[{{ json . }}]{{ end }}{{ end }}",
            "functools[",
        ),
        # a value comes first: nothing literal precedes the calls
        (
            "{{ range .Messages }}{{ if .ToolCalls }}{{ .Content }}<x>{{ end }}{{ end }}",
            None,
        ),
        # no tool calls at all
        ("{{ range .Messages }}{{ .Content }}{{ end }}", None),
        ("{{ .Prompt }}", None),
    ],
)
def test_tool_call_text(source: str, expected: str | None) -> None:
    assert parse(source).tool_call_text() == expected
