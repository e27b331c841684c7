"""Build the data Ollama hands a model's template, and render prompts from it.

Input is in Ollama's wire form: messages ``{"role", "content", "thinking", "images",
"tool_calls": [{"id", "function": {"index", "name", "arguments"}}], "tool_name",
"tool_call_id"}`` and tools ``{"type": "function", "function": {"name", "description",
"parameters": {...JSON schema...}}}`` (dicts or pydantic models). The template sees
them with Go's capitalised field names (``.Role``, ``.ToolCalls``, ``.Function.Name``...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nexus.template.core import Template
from nexus.template.values import JSONList, JSONMap, PropertyType, Struct

ThinkValue = bool | str | None

_THINK_LEVELS = ("high", "medium", "low", "max")


def _as_dict(obj: Any) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        result = dump(exclude_none=True)
        if isinstance(result, Mapping):
            return result
    raise TypeError(f"expected a mapping, got {type(obj).__name__}")


def _go_numbers(value: Any) -> Any:
    """JSON numbers as Go decodes them into ``any``: float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_go_numbers(v) for v in value]
    return value


def think_fields(think: ThinkValue) -> dict[str, Any]:
    """``.Think``, ``.ThinkLevel`` and ``.IsThinkSet`` for a request's ``think`` value."""
    if think is None:
        return {"Think": False, "ThinkLevel": "", "IsThinkSet": False}
    if isinstance(think, bool):
        return {"Think": think, "ThinkLevel": "medium" if think else "", "IsThinkSet": True}
    return {"Think": think in _THINK_LEVELS, "ThinkLevel": think, "IsThinkSet": True}


def collate(messages: Iterable[Any]) -> tuple[str, list[dict[str, Any]]]:
    """All system contents joined by a blank line, and the messages with consecutive
    same-role messages (tool results excepted) merged into one."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for raw in messages:
        msg = _as_dict(raw)
        role = str(msg.get("role") or "").lower()
        content = msg.get("content") or ""
        if role == "system":
            system.append(content)
        if out and out[-1]["role"] == role and role != "tool":
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({**msg, "role": role, "content": content})
    return "\n\n".join(system), out


# ----------------------------------------------------------------------------- messages


def _arguments(raw: Any) -> JSONMap:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raw = {}
    if not isinstance(raw, Mapping):
        raw = {}
    return JSONMap(_go_numbers(raw))


def _tool_call(raw: Any) -> Struct:
    call = _as_dict(raw)
    fn = _as_dict(call.get("function") or {})
    function = Struct(
        {
            "Index": int(fn.get("index") or 0),
            "Name": fn.get("name") or "",
            "Arguments": _arguments(fn.get("arguments")),
        },
        kind="ToolCallFunction",
    )
    return Struct({"ID": call.get("id") or "", "Function": function}, kind="ToolCall")


def message_view(msg: Mapping[str, Any]) -> Struct:
    """One message as the template sees it."""
    calls = msg.get("tool_calls")
    images = msg.get("images")
    return Struct(
        {
            "Role": msg.get("role") or "",
            "Content": msg.get("content") or "",
            "Thinking": msg.get("thinking") or "",
            "Images": list(images) if images else None,
            "ToolCalls": [_tool_call(c) for c in calls] if calls else None,
            "ToolName": msg.get("tool_name") or "",
            "ToolCallID": msg.get("tool_call_id") or "",
        },
        kind="Message",
    )


# ----------------------------------------------------------------------------- tools


def _properties(raw: Any) -> JSONMap | None:
    if raw is None:
        return None
    return JSONMap((name, _property(prop)) for name, prop in _as_dict(raw).items())


def _property(raw: Any) -> Struct:
    prop = _as_dict(raw)
    any_of = [_property(p) for p in prop.get("anyOf") or ()] or None
    type_ = prop.get("type")
    types = PropertyType([type_] if isinstance(type_, str) else list(type_ or ()))
    items = _go_numbers(prop.get("items"))
    description = prop.get("description") or ""
    enum = _go_numbers(list(prop.get("enum") or ())) or None
    nested = _properties(prop.get("properties"))
    required = list(prop.get("required") or ()) or None
    # The JSON form, with Go's field order and omitempty rules.
    wire = Struct()
    if any_of:
        wire["anyOf"] = any_of
    if types:
        wire["type"] = types
    if items is not None:
        wire["items"] = items
    if description:
        wire["description"] = description
    if enum:
        wire["enum"] = enum
    if nested is not None:
        wire["properties"] = Struct(nested)  # insertion order, unlike a Go map
    if required:
        wire["required"] = required
    return Struct(
        {
            "AnyOf": any_of,
            "Type": types,
            "Items": items,
            "Description": description,
            "Enum": enum,
            "Properties": nested,
            "Required": required,
        },
        kind="ToolProperty",
        wire=wire,
    )


def tool_view(raw: Any) -> Struct:
    """One tool as the template sees it; prints as its JSON."""
    tool = _as_dict(raw)
    fn = _as_dict(tool.get("function") or {})
    params = _as_dict(fn.get("parameters") or {})
    defs = _go_numbers(params.get("$defs"))
    items = _go_numbers(params.get("items"))
    required = list(params.get("required") or ()) or None
    properties = _properties(params.get("properties"))

    params_wire = Struct({"type": params.get("type") or ""})
    if defs is not None:
        params_wire["$defs"] = defs
    if items is not None:
        params_wire["items"] = items
    if required:
        params_wire["required"] = required
    params_wire["properties"] = properties
    parameters = Struct(
        {
            "Type": params.get("type") or "",
            "Defs": defs,
            "Items": items,
            "Required": required,
            "Properties": properties,
        },
        kind="ToolFunctionParameters",
        wire=params_wire,
    )

    name, description = fn.get("name") or "", fn.get("description") or ""
    fn_wire = Struct({"name": name, "description": description, "parameters": params_wire})
    function = Struct(
        {"Name": name, "Description": description, "Parameters": parameters},
        kind="ToolFunction",
        wire=fn_wire,
    )

    tool_items = _go_numbers(tool.get("items"))
    tool_wire = Struct({"type": tool.get("type") or ""})
    if tool_items is not None:
        tool_wire["items"] = tool_items
    tool_wire["function"] = fn_wire
    return Struct(
        {"Type": tool.get("type") or "", "Items": tool_items, "Function": function},
        kind="Tool",
        wire=tool_wire,
    )


def tools_view(tools: Sequence[Any] | None) -> JSONList | None:
    """``.Tools``: nil without tools, else a list that prints as its JSON."""
    if tools is None:
        return None
    return JSONList(tool_view(t) for t in tools)


# ----------------------------------------------------------------------------- rendering


def tag_images(messages: Sequence[Any], start: int = 0) -> list[dict[str, Any]]:
    """Copies of ``messages`` where each image, from ``messages[start]`` on, is named in
    the content by a tag ``[img-N]`` (N counts from 0): the first literal ``[img]`` is
    replaced by it, or else it is put before the content."""
    out = [dict(_as_dict(m)) for m in messages]
    count = 0
    for msg in out[start:]:
        images = msg.get("images") or ()
        if not images:
            continue
        prefix = ""
        content = msg.get("content") or ""
        for _ in images:
            tag = f"[img-{count}]"
            count += 1
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
        msg["content"] = prefix + content
    return out


def _render_legacy(
    template: Template, messages: list[dict[str, Any]], think: dict[str, Any]
) -> str:
    """Fold a chat into (system, prompt, response) turns for a template without .Messages.

    Every finished turn renders the whole template; the last one renders it only up to
    ``.Response``, so the prompt ends where the model continues.
    """
    parts: list[str] = []
    system = prompt = response = ""

    def turn() -> dict[str, Any]:
        return {"System": system, "Prompt": prompt, "Response": response, **think}

    for msg in messages:
        role, content = msg["role"], msg["content"]
        if role == "system":
            if prompt or response:
                parts.append(template.render(turn()))
                prompt = response = ""
            system = content
        elif role == "user":
            if response:
                parts.append(template.render(turn()))
                system = response = ""
            prompt = content
        elif role == "assistant":
            response = content
    parts.append(template.render_until_response(turn()))
    return "".join(parts)


def render_prompt(
    template: Template,
    *,
    messages: Sequence[Any],
    tools: Sequence[Any] | None = None,
    think: ThinkValue = None,
    suffix: str | None = None,
) -> str:
    """The prompt for a chat, as Ollama renders it with a model's Go template.

    With a ``suffix`` (fill-in-the-middle) and a final user message, the template gets
    only ``.Prompt`` (that message), ``.Suffix`` and ``.Response``. Otherwise templates
    that use ``.Messages`` get the whole collated chat; older ones get it folded into
    (system, prompt, response) turns.
    """
    thinking = think_fields(think)
    if suffix:
        last = _as_dict(messages[-1]) if messages else {}
        prompt = last.get("content") or ""
        if prompt and str(last.get("role") or "").lower() == "user":
            return template.render({"Prompt": prompt, "Suffix": suffix, "Response": "", **thinking})
    system, collated = collate(messages)
    if template.uses("messages"):
        return template.render(
            {
                "System": system,
                "Messages": [message_view(m) for m in collated],
                "Tools": tools_view(tools),
                "Response": "",
                **thinking,
            }
        )
    return _render_legacy(template, collated, thinking)


def render_generate(
    template: Template,
    *,
    system: str | None,
    prompt: str,
    suffix: str | None = None,
    think: ThinkValue = None,
    messages: Sequence[Any] | None = None,
    images: Sequence[str] | None = None,
) -> str:
    """The prompt for /api/generate (not raw): ``system`` (the request's, else the
    model's), the model's MESSAGES history, then the user ``prompt`` with its ``images``,
    rendered like a chat. With ``suffix``, the template renders in fill-in-the-middle mode.
    """
    if suffix:
        if prompt:
            return template.render(
                {"Prompt": prompt, "Suffix": suffix, "Response": "", **think_fields(think)}
            )
        return render_prompt(template, messages=[], think=think)
    chat: list[Any] = []
    if system:
        chat.append({"role": "system", "content": system})
    chat.extend(messages or ())
    user: dict[str, Any] = {"role": "user", "content": prompt}
    if images:
        user["images"] = list(images)
    chat.append(user)
    return render_prompt(template, messages=chat, think=think)
