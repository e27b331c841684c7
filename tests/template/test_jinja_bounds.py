"""A Jinja chat template is anyone's upload: rendered in the server, whatever it tries ends in
``TemplateError`` within the deadline, without taking memory, and real templates still render."""

from __future__ import annotations

import resource
import time

import pytest

from nexus.template import jinja
from nexus.template.jinja import DEADLINE, MAX_OUTPUT, JinjaChatTemplate, TemplateError

MESSAGES = [{"role": "user", "content": 'x\\"' * 10}] * 256

HOSTILE = {
    "nested loops": "{% for a in messages %}{% for b in messages %}{% for c in messages %}"
    "{% for d in messages %}x{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
    "empty nested loops": "{% for a in 'x' * 4000 %}{% for b in 'y' * 4000 %}"
    "{% endfor %}{% endfor %}",
    "range": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "doubling": "{% set ns = namespace(s='ab') %}{% for m in messages %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "doubling by a loop": "{% set ns = namespace(s='ab') %}{% for m in messages %}"
    "{% for a in [ns.s, ns.s] %}{% set ns.s = ns.s ~ a %}{% endfor %}{% endfor %}",
    "escaping doubles": "{% set ns = namespace(s='\"') %}{% for m in messages %}"
    "{% set ns.s = ns.s|tojson %}{% endfor %}{{ ns.s }}",
    "repr doubles": "{% set ns = namespace(s='\\\\') %}{% for m in messages %}"
    "{% set ns.s = [ns.s] ~ '' %}{% endfor %}{{ ns.s }}",
    "repeat text": "{{ 'x' * 1000000000 }}",
    "repeat a list": "{{ [1] * 1000000000 }}",
    "format": "{{ '%999999999d' % 1 }}",
    "format method": "{{ '{0:>999999999}'.format(1) }}",
    "power": "{{ 10 ** 100000000 }}",
    "center filter": "{{ 'x'|center(1000000000) }}",
    "center method": "{{ 'x'.center(1000000000) }}",
    "replace grows": "{{ messages[0].content.replace('x', 'y' * 4000000) }}",
    "replace filter grows": "{{ messages[0].content|replace('x', 'y' * 4000000) }}",
    "join separator": "{{ messages|join('x' * 4000000) }}",
    "output of one value": "{% set s = messages|tojson %}{% for a in messages %}"
    "{% for b in messages %}{{ s }}{% endfor %}{% endfor %}",
    "output of text": "{% for a in messages %}{% for b in messages %}"
    + "y" * 30000
    + "{% endfor %}{% endfor %}",
    "recursion": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "recursive loop": "{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}",
    "include": "{% include 'other' %}",
    "internals": "{{ messages.__class__.__mro__[1].__subclasses__() }}",
    "lipsum": "{{ lipsum(1000000) }}",
    "batch": "{{ messages|batch(1000000000)|list }}",
    "too long": "x" * (65 << 10),
}


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_template_ends_in_an_error_quickly_and_small(source: str) -> None:
    before, start = _peak(), time.perf_counter()
    with pytest.raises(TemplateError):
        JinjaChatTemplate(source).render(MESSAGES, bos_token="", eos_token="")
    assert time.perf_counter() - start < DEADLINE + 1.0
    assert _peak() - before < 64 << 20


def test_the_bounds_leave_real_work_alone() -> None:
    template = JinjaChatTemplate(
        "{{ bos_token }}{% set ns = namespace(n=0) %}{% for m in messages %}"
        "{% set ns.n = ns.n + 1 %}{{ '<|' ~ m.role ~ '|>' ~ m.content|trim ~ '\\n' }}"
        "{% if loop.last %}{{ '=' * 3 }}{{ ns.n }}{% endif %}{% endfor %}"
        "{{ messages|map(attribute='role')|join(',') }}"
        "{{ messages[1].content.replace('h', 'j').split(' ')[0] }}"
        "{{ strftime_now('%Y')|length }}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    messages = [{"role": "user", "content": " a cat "}, {"role": "assistant", "content": "hi"}]
    text = template.render(messages, bos_token="<s>", eos_token="</s>")
    assert text == "<s><|user|>a cat\n<|assistant|>hi\n===2user,assistantji4<|assistant|>"


def test_tojson_keeps_text_as_it_is() -> None:
    template = JinjaChatTemplate("{{ messages[0] | tojson }}")
    assert template.render([{"content": "héllo"}], bos_token="", eos_token="") == (
        '{"content": "héllo"}'
    )


def test_a_refusal_from_the_template_is_its_message() -> None:
    template = JinjaChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(TemplateError, match="roles must alternate"):
        template.render([], bos_token="", eos_token="")


def test_a_prompt_may_not_pass_the_output_cap() -> None:
    template = JinjaChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}")
    big = [{"content": "x" * (MAX_OUTPUT // 2 + 1)}] * 2
    with pytest.raises(TemplateError):
        template.render(big, bos_token="", eos_token="")


def test_time_the_machine_gave_other_processes_is_not_the_templates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A render preempted on a busy machine (the wall clock jumping a second between two lines)
    is not refused: the deadline is the render's own CPU time."""
    clock = iter(range(10**6))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    template = JinjaChatTemplate("{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}")
    messages = [{"role": "user", "content": "hi"}] * 20
    assert template.render(messages, bos_token="", eos_token="") == "user:hi;" * 20


def _clocked_memory(monkeypatch: pytest.MonkeyPatch, tick: float) -> list[int]:
    """A wall clock advancing ``tick`` seconds per reading, and a resident size growing 1 MiB
    per look at it; returns the list the looks are counted in."""
    clock = iter(range(10**6))
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock) * tick)
    looks: list[int] = []

    def grows() -> int:
        looks.append(1)
        return len(looks) << 20

    monkeypatch.setattr(jinja, "_resident", grows)
    return looks


def test_memory_is_looked_at_as_the_render_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory growing while lines run (1 MiB between two looks) ends the render past the bound."""
    looks = _clocked_memory(monkeypatch, jinja.MEMORY_LOOK * 2)
    template = JinjaChatTemplate("{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}")
    with pytest.raises(TemplateError, match="memory"):
        template.render([{"role": "user", "content": "hi"}] * 64, bos_token="", eos_token="")
    assert len(looks) > jinja.MEMORY_GROWTH >> 20


def test_a_short_render_reads_the_memory_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within ``MEMORY_LOOK`` of its start, a render does not look at memory line by line."""
    looks = _clocked_memory(monkeypatch, jinja.MEMORY_LOOK / 1000)
    template = JinjaChatTemplate("{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}")
    messages = [{"role": "user", "content": "hi"}] * 20
    assert template.render(messages, bos_token="", eos_token="") == "user:hi;" * 20
    assert len(looks) == 1
