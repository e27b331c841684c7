"""The Go text/template language: syntax, control flow, functions, printing, errors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

from nexus.errors import BadRequest
from nexus.template import Template, TemplateError, parse


def render(src: str, data: dict[str, Any] | None = None) -> str:
    return parse(src).render(data or {})


# ----------------------------------------------------------------------------- text, trim


def test_plain_text_and_fields() -> None:
    assert render("Hello, {{ .Name }}!", {"Name": "world"}) == "Hello, world!"


def test_trim_markers_remove_surrounding_whitespace() -> None:
    assert render("a  \n\t {{- .X -}} \n  b", {"X": "-"}) == "a-b"
    assert render("a \n{{- .X }} \nb", {"X": 1}) == "a1 \nb"
    assert render("a {{ .X -}}\n\n b", {"X": 1}) == "a 1b"


def test_trim_marker_needs_a_space_else_it_is_a_negative_number() -> None:
    assert render("x {{-3}} y") == "x -3 y"
    assert render("x {{- 3}} y") == "x3 y"


def test_comments_are_dropped_and_can_trim() -> None:
    assert render("a {{/* note */}} b") == "a  b"
    assert render("a\n\n{{- /* multi\nline */ -}}\n\nb") == "ab"


def test_action_may_span_lines() -> None:
    assert render('{{ .A\n | printf\n  "<%s>" }}', {"A": "x"}) == "<x>"


# ----------------------------------------------------------------------------- literals


def test_string_literals_and_escapes() -> None:
    assert render(r'{{ "tab\there" }}|{{ "\x41\u00e9\101" }}|{{ "q\"\\" }}') == 'tab\there|AéA|q"\\'


def test_raw_strings_keep_backslashes_and_braces() -> None:
    assert render("{{ `a\\n{{x}}\nline` }}") == "a\\n{{x}}\nline"


def test_number_literals() -> None:
    out = render(
        "{{ 0x1F }} {{ 017 }} {{ 0b101 }} {{ 1_000 }} {{ 1e3 }} {{ .5 }} {{ -3 }} {{ 'a' }}"
    )
    assert out == "31 15 5 1000 1000 0.5 -3 97"


def test_bool_and_nil_literals() -> None:
    assert render("{{ true }} {{ false }} {{ print nil }}") == "true false <nil>"


# ----------------------------------------------------------------------------- printing


def test_values_print_like_go() -> None:
    data = {
        "F": 2.5,
        "I": 3.0,
        "Big": 1e6,
        "Small": 1e-5,
        "Mid": 123456.0,
        "B": True,
        "L": [1, "a", None, [2]],
        "M": {"b": 1, "a": "x"},
        "E": [],
    }
    out = render(
        "{{ .F }} {{ .I }} {{ .Big }} {{ .Small }} {{ .Mid }} {{ .B }} {{ .L }} {{ .M }} {{ .E }}",
        data,
    )
    assert out == "2.5 3 1e+06 1e-05 123456 true [1 a <nil> [2]] map[a:x b:1] []"


def test_missing_keys_render_empty_and_are_false() -> None:
    src = "[{{ .Nope }}][{{ .Nope.Deeper }}][{{ if .Nope }}t{{ else }}f{{ end }}][{{ len .Nope }}]"
    assert render(src, {}) == "[][][f][0]"


def test_attribute_access_on_objects() -> None:
    @dataclass
    class Msg:
        Role: str
        Content: str

    assert render("{{ .M.Role }}: {{ .M.Content }}", {"M": Msg("user", "hi")}) == "user: hi"


def test_field_on_a_string_is_an_error() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field B in type string"):
        render("{{ .A.B }}", {"A": "text"})


# ----------------------------------------------------------------------------- if / with


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"A": 1}, "a"),
        ({"A": 0, "B": "x"}, "b"),
        ({"A": "", "B": [], "C": {"k": 1}}, "c"),
        ({"A": None, "B": {}, "C": False}, "none"),
    ],
)
def test_if_else_if_chain(data: dict[str, Any], expected: str) -> None:
    src = "{{ if .A }}a{{ else if .B }}b{{ else if .C }}c{{ else }}none{{ end }}"
    assert render(src, data) == expected


def test_with_sets_dot_and_has_else() -> None:
    src = "{{ with .User }}[{{ .Name }}]{{ else }}anonymous{{ end }}"
    assert render(src, {"User": {"Name": "ann"}}) == "[ann]"
    assert render(src, {"User": {}}) == "anonymous"


def test_else_with_chain() -> None:
    src = "{{ with .A }}a={{ . }}{{ else with .B }}b={{ . }}{{ else }}none{{ end }}"
    assert render(src, {"B": "2"}) == "b=2"
    assert render(src, {"A": "1", "B": "2"}) == "a=1"
    assert render(src, {}) == "none"


# ----------------------------------------------------------------------------- range


def test_range_with_index_and_value() -> None:
    src = "{{ range $i, $v := .L }}{{ $i }}={{ $v }};{{ end }}"
    assert render(src, {"L": ["a", "b"]}) == "0=a;1=b;"


def test_range_single_variable_gets_the_element() -> None:
    assert render("{{ range $v := .L }}<{{ $v }}>{{ end }}", {"L": ["p", "q"]}) == "<p><q>"


def test_range_else_on_empty_or_missing() -> None:
    src = "{{ range .L }}{{ . }}{{ else }}empty{{ end }}"
    assert render(src, {"L": []}) == "empty"
    assert render(src, {}) == "empty"


def test_range_over_map_is_sorted_by_key() -> None:
    src = "{{ range $k, $v := .M }}{{ $k }}:{{ $v }} {{ end }}"
    assert render(src, {"M": {"zeta": 1, "alpha": 2, "mid": 3}}) == "alpha:2 mid:3 zeta:1 "


def test_range_break_and_continue() -> None:
    src = (
        "{{ range .L }}{{ if eq . 1 }}{{ continue }}{{ end }}"
        "{{ if eq . 3 }}{{ break }}{{ end }}{{ . }}{{ end }}"
    )
    assert render(src, {"L": [0, 1, 2, 3, 4]}) == "02"


def test_dollar_is_the_root_inside_range() -> None:
    src = "{{ range .Items }}{{ $.Prefix }}{{ . }} {{ end }}"
    assert render(src, {"Prefix": "#", "Items": ["a", "b"]}) == "#a #b "


def test_last_element_idiom() -> None:
    src = "{{ range $i, $_ := .L }}{{ . }}{{ if eq (len (slice $.L $i)) 1 }}!{{ end }}{{ end }}"
    assert render(src, {"L": ["a", "b", "c"]}) == "abc!"


def test_range_over_struct_like_value_is_an_error() -> None:
    with pytest.raises(TemplateError, match="range can't iterate over"):
        render("{{ range .S }}{{ end }}", {"S": "abc"})


# ----------------------------------------------------------------------------- variables


def test_assignment_inside_blocks_updates_outer_variable() -> None:
    src = (
        "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ range .L }}{{ $x = . }}{{ end }}{{ $x }}"
    )
    assert render(src, {"L": [7, 8]}) == "8"


def test_accumulating_with_printf() -> None:
    src = '{{ $s := "" }}{{ range .L }}{{ $s = printf "%s%s" $s . }}{{ end }}{{ $s }}'
    assert render(src, {"L": ["a", "b", "c"]}) == "abc"


def test_variable_declared_in_block_goes_out_of_scope() -> None:
    with pytest.raises(TemplateError, match=r'line 2: undefined variable "\$y"'):
        parse("{{ if true }}{{ $y := 1 }}{{ end }}\n{{ $y }}")


def test_if_pipeline_variable_visible_in_else() -> None:
    assert render("{{ if $x := .A }}{{ $x }}{{ else }}[{{ $x }}]{{ end }}", {"A": 0}) == "[0]"


def test_declaration_prints_nothing() -> None:
    assert render('a{{ $x := "hidden" }}b{{ $x }}') == "abhidden"


# ----------------------------------------------------------------------------- pipelines


def test_pipeline_passes_value_as_last_argument() -> None:
    assert render('{{ "x" | printf "%s-%s" "y" }}') == "y-x"
    assert render('{{ .A | len | printf "%03d" }}', {"A": "abcd"}) == "004"


def test_parenthesised_subexpression_and_chained_fields() -> None:
    data = {"L": [{"Name": "first"}], "M": {"k": {"j": "deep"}}}
    assert render("{{ (index .L 0).Name }} {{ .M.k.j }} {{ $.M.k.j }}", data) == "first deep deep"


def test_and_or_return_operands_and_short_circuit() -> None:
    assert render('{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 "" }}|{{ or 0 "x" }}') == "0|2||x"
    # the failing index is never evaluated
    assert render("{{ or .A (index .L 9) }}", {"A": "ok", "L": []}) == "ok"
    assert render("{{ not 0 }} {{ not .L }}", {"L": [1]}) == "true false"


# ----------------------------------------------------------------------------- comparisons


def test_eq_ne_and_multi_arg_eq() -> None:
    out = render(
        '{{ eq 1 1 }} {{ eq "a" "b" "c" "a" }} {{ eq "a" "b" }} {{ ne 1 2 }} {{ ne "a" "a" }}'
    )
    assert out == "true true false true false"


def test_ordering_functions() -> None:
    out = render('{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1 2 }} {{ lt 1.5 2 }}')
    assert out == "true true true false true"


def test_eq_with_missing_value_is_false_not_an_error() -> None:
    assert render('{{ eq .Nope "x" }} {{ eq .Nope nil }}') == "false true"


def test_comparing_incompatible_types_is_an_error() -> None:
    with pytest.raises(TemplateError, match="incompatible types for comparison"):
        render('{{ eq 1 "1" }}')
    with pytest.raises(TemplateError, match="incompatible types for comparison"):
        render('{{ lt 1 "a" }}')


# ----------------------------------------------------------------------------- containers


def test_len_index_slice() -> None:
    data = {"S": "héllo", "L": [1, 2, 3], "M": {"k": "v"}, "N": [[1], [2, 3]]}
    src = "{{ len .S }} {{ len .L }} {{ len .M }} {{ index .L 1 }} {{ index .M `k` }}"
    src += " {{ index .N 1 0 }}"
    assert render(src, data) == "6 3 1 2 v 2"
    src = "{{ slice .L 1 }} {{ slice .L 1 2 }} {{ slice .S 1 3 }} {{ slice .L }}"
    assert render(src, {"L": [1, 2, 3], "S": "abcdef"}) == "[2 3] [2] bc [1 2 3]"
    assert render('{{ index .M "missing" }}|', {"M": {}}) == "|"


def test_index_out_of_range_is_an_error() -> None:
    with pytest.raises(TemplateError, match="index out of range: 5"):
        render("{{ index .L 5 }}", {"L": [1]})


# ----------------------------------------------------------------------------- printf & co


def test_printf_verbs() -> None:
    src = (
        '{{ printf "%s|%d|%v|%q|%.2f|%5.1f|%-4s|%x|%t|%c|%%"'
        ' "s" 42 .L "q\\"" 3.14159 2.0 "ab" 255 true 65 }}'
    )
    assert render(src, {"L": [1, "b"]}) == 's|42|[1 b]|"q\\""|3.14|  2.0|ab  |ff|true|A|%'


def test_printf_reports_bad_and_missing_arguments_like_go() -> None:
    assert render('{{ printf "%d" 1.5 }}') == "%!d(float64=1.5)"
    assert render('{{ printf "%s %s" "a" }}') == "a %!s(MISSING)"
    assert render('{{ printf "x" 1 }}') == "x%!(EXTRA int=1)"


def test_print_and_println() -> None:
    assert render('{{ print 1 2 "a" "b" 3 }}|{{ println 1 "a" }}|') == "1 2ab3|1 a\n|"


def test_escapers() -> None:
    assert render("{{ html .S }}", {"S": "<a href='x'>&\"</a>"}) == (
        "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"
    )
    assert render("{{ js .S }}", {"S": 'it\'s <b> = "q"\n'}) == (
        'it\\\'s \\u003Cb\\u003E \\u003D \\"q\\"\\u000A'
    )
    assert render("{{ urlquery .S }}", {"S": "a b&c=d/é"}) == "a+b%26c%3Dd%2F%C3%A9"


# ----------------------------------------------------------------------------- Ollama funcs


def test_json_is_compact_sorted_and_html_safe() -> None:
    data = {"M": {"b": [1, "<x>"], "a": None, "c": 1.0}, "S": 'q"\\\t&'}
    assert render("{{ json .M }} {{ json .S }}", data) == (
        '{"a":null,"b":[1,"\\u003cx\\u003e"],"c":1} "q\\"\\\\\\t\\u0026"'
    )
    assert render("{{ json 1e21 }} {{ json 1e-7 }} {{ json 0.5 }} {{ json true }}") == (
        "1e+21 1e-7 0.5 true"
    )


def test_dates() -> None:
    today = dt.date.today()
    out = render('{{ currentDate }} {{ yesterdayDate }} {{ currentDate "%Y" }}')
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    assert out in (
        f"{today.isoformat()} {yesterday} {today.isoformat()}",
        # midnight passed while rendering
        f"{(today + dt.timedelta(days=1)).isoformat()} {today.isoformat()} "
        f"{(today + dt.timedelta(days=1)).isoformat()}",
    )


def test_to_typescript_type_of_plain_values_is_any() -> None:
    assert render("{{ toTypeScriptType .X }}", {"X": "string"}) == "any"


# ----------------------------------------------------------------------------- define


def test_define_and_template_with_and_without_argument() -> None:
    src = '{{ define "T" }}[{{ . }}|{{ $ }}]{{ end }}{{ template "T" .A }}{{ template "T" }}'
    assert render(src, {"A": "x"}) == "[x|x][|]"


def test_block_defines_and_runs() -> None:
    assert render('{{ block "B" .A }}<{{ . }}>{{ end }}', {"A": "y"}) == "<y>"


def test_recursive_template() -> None:
    src = (
        '{{ define "tree" }}{{ .Name }}{{ if .Kids }}({{ range .Kids }}'
        '{{ template "tree" . }}{{ end }}){{ end }}{{ end }}{{ template "tree" .Root }}'
    )
    data = {"Root": {"Name": "a", "Kids": [{"Name": "b"}, {"Name": "c", "Kids": [{"Name": "d"}]}]}}
    assert render(src, data) == "a(bc(d))"


def test_runaway_recursion_is_stopped() -> None:
    with pytest.raises(TemplateError, match="maximum template depth"):
        render('{{ define "x" }}{{ template "x" . }}{{ end }}{{ template "x" . }}')


# ----------------------------------------------------------------------------- Ollama rules


def test_response_appended_when_template_has_neither_messages_nor_response() -> None:
    t = parse("{{ .System }} {{ .Prompt }}")
    assert t.render({"System": "s", "Prompt": "p", "Response": "r"}) == "s pr"
    assert t.uses("Response")


def test_response_not_appended_when_messages_or_response_used() -> None:
    assert parse("{{ range .Messages }}{{ end }}x").render({"Response": "r"}) == "x"
    assert parse("{{ .Response }}!").render({"Response": "r"}) == "r!"


def test_uses_reports_fields_case_insensitively() -> None:
    t = parse(
        "{{ if .Tools }}{{ range .Tools }}{{ .Function.Name }}{{ end }}{{ end }}"
        "{{ range $m := .Messages }}{{ $m.ToolCalls }}{{ end }}"
        '{{ define "x" }}{{ .Suffix }}{{ end }}'
    )
    for name in ("Tools", "tools", "Messages", "ToolCalls", "Suffix", "Name"):
        assert t.uses(name), name
    assert not t.uses("System")
    assert not t.uses("Prompt")


def test_parse_keeps_its_source() -> None:
    src = "{{ .Prompt }} kept"
    assert isinstance(parse(src), Template)
    assert str(parse(src)) == src


def test_render_until_response_cuts_trailing_text() -> None:
    t = parse("<s>{{ .Prompt }}</s>{{ if .X }}x{{ end }}<a>{{ .Response }}</a>tail")
    assert t.render_until_response({"Prompt": "p", "X": 1, "Response": "r"}) == "<s>p</s>x<a>r"
    # the full template is unaffected
    assert t.render({"Prompt": "p", "Response": "r"}) == "<s>p</s><a>r</a>tail"


# ----------------------------------------------------------------------------- parse errors


@pytest.mark.parametrize(
    ("src", "line", "message"),
    [
        ("{{ .Prompt ", 1, "unclosed action"),
        ("ok\n{{ if .A }}\nnever closed", 3, "unexpected EOF"),
        ("a\nb\n{{ end }}", 3, "unexpected {{end}}"),
        ("{{ else }}", 1, "unexpected {{else}}"),
        ("\n\n{{ nosuch 1 }}", 3, 'function "nosuch" not defined'),
        ("{{ $x }}", 1, 'undefined variable "$x"'),
        ("\n{{ break }}", 2, "{{break}} outside {{range}}"),
        ('{{ "abc }}', 1, "unterminated quoted string"),
        ("{{/* open", 1, "unclosed comment"),
        ("x\n{{ (1 }}", 2, "unclosed left paren"),
        ("{{ 1) }}", 1, "unexpected right paren"),
        ("{{ 1x }}", 1, "bad number syntax"),
        ('{{ .A | "x" }}', 1, "non executable command in pipeline stage 2"),
        ('\n{{ template "nope" }}', 2, 'no such template "nope"'),
        ("{{ $a, $b := .L }}", 1, "too many declarations"),
        ('{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}', 1, "multiple definition"),
        ("{{ range .L }}{{ else if .X }}{{ end }}", 1, "{{if}}"),
        ("{{ }}", 1, "missing value for command"),
        ("{{ if }}{{ end }}", 1, "missing value for if"),
        ("{{ $x = 1 }}", 1, 'undefined variable "$x"'),
        ("{{ .A @ }}", 1, "unexpected '@'"),
    ],
)
def test_parse_errors_name_the_line(src: str, line: int, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse(src)
    err = info.value
    assert err.line == line
    assert message in str(err)
    assert f"line {line}" in str(err)
    assert isinstance(err, BadRequest)
    assert err.status == 400


def test_execution_errors_name_the_line() -> None:
    with pytest.raises(TemplateError) as info:
        render("a\nb\n{{ index .L 3 }}", {"L": []})
    assert info.value.line == 3


def test_wrong_argument_count() -> None:
    with pytest.raises(TemplateError, match="wrong number of args for not: want 1 got 0"):
        render("{{ not }}")
    with pytest.raises(TemplateError, match="can't give argument to non-function"):
        render('{{ "a" "b" }}')
