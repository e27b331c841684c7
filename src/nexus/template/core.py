"""The parsed :class:`Template`, and Ollama's touch-ups of it."""

from __future__ import annotations

from typing import Any

from nexus.template.nodes import (
    ActionNode,
    Body,
    ChainNode,
    CommandNode,
    FieldNode,
    IfNode,
    Node,
    PipeNode,
    RangeNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
)
from nexus.template.parser import parse_tree
from nexus.template.render import execute

#: What Ollama uses when a model has no template.
DEFAULT_TEMPLATE = "{{ .Prompt }}"

_RESPONSE = ActionNode(0, PipeNode(0, (), False, (CommandNode(0, (FieldNode(("Response",)),)),)))


def _identifiers(node: Node, out: set[str]) -> None:
    """Collect (lower-cased) every field and variable name used, like Ollama's Vars()."""
    if isinstance(node, FieldNode):
        out.update(i.lower() for i in node.idents)
    elif isinstance(node, VariableNode):
        out.add(node.name.lower())
        out.update(i.lower() for i in node.fields)
    elif isinstance(node, ChainNode):
        out.update(i.lower() for i in node.fields)
        _identifiers(node.node, out)
    elif isinstance(node, PipeNode):
        for cmd in node.cmds:
            for arg in cmd.args:
                _identifiers(arg, out)
    elif isinstance(node, ActionNode):
        _identifiers(node.pipe, out)
    elif isinstance(node, IfNode | WithNode | RangeNode):
        _identifiers(node.pipe, out)
        for child in node.body + (node.else_body or ()):
            _identifiers(child, out)
    elif isinstance(node, TemplateNode) and node.pipe is not None:
        _identifiers(node.pipe, out)


def _cut_after_response(body: Body) -> Body:
    """A copy of ``body`` with everything after the first ``.Response`` field dropped.

    This is the walk Ollama does for the last turn of a legacy (non-.Messages) template,
    so the prompt stops where the model's answer begins: the action printing
    ``.Response`` stays, later nodes go, and so do later arguments and pipeline stages in
    that same action. Conditions of if/with/range are not searched.
    """
    cut = False

    def walk(node: Node) -> Node | None:
        nonlocal cut
        if isinstance(node, FieldNode) and "Response" in node.idents:
            cut = True
            return node
        if cut:
            return None
        if isinstance(node, IfNode | WithNode | RangeNode):
            body = walk_body(node.body)
            else_body = None
            if node.else_body is not None and not cut:
                else_body = walk_body(node.else_body)
            return type(node)(node.line, node.pipe, body, else_body)
        if isinstance(node, ActionNode):
            pipe = walk(node.pipe)
            return ActionNode(node.line, pipe) if isinstance(pipe, PipeNode) else None
        if isinstance(node, PipeNode):
            cmds = []
            for cmd in node.cmds:
                args = tuple(a for a in map(walk, cmd.args) if a is not None)
                if not args:
                    return None
                cmds.append(CommandNode(cmd.line, args))
            return PipeNode(node.line, node.decl, node.is_assign, tuple(cmds))
        return node

    def walk_body(nodes: Body) -> Body:
        return tuple(n for n in map(walk, nodes) if n is not None)

    return walk_body(body)


def _mentions_tool_calls(pipe: PipeNode) -> bool:
    """Whether a control's pipeline names ``ToolCalls`` as a field (``.ToolCalls``,
    ``$m.ToolCalls``, ``(x).ToolCalls``), directly among its arguments."""
    for cmd in pipe.cmds:
        for arg in cmd.args:
            if isinstance(arg, FieldNode) and "ToolCalls" in arg.idents:
                return True
            if isinstance(arg, VariableNode | ChainNode) and "ToolCalls" in arg.fields:
                return True
    return False


def _tool_calls_control(body: Body) -> IfNode | WithNode | RangeNode | None:
    """The first (depth-first) if/with/range whose pipeline is about ``ToolCalls``."""
    for node in body:
        if not isinstance(node, IfNode | WithNode | RangeNode):
            continue
        if _mentions_tool_calls(node.pipe):
            return node
        for child in (node.body, node.else_body or ()):
            found = _tool_calls_control(child)
            if found is not None:
                return found
    return None


def _first_text(body: Body) -> str | None:
    """The first text that is not only whitespace, looking into nested controls but
    giving up at the first action (what follows an action is no longer a prefix)."""
    for node in body:
        if isinstance(node, TextNode):
            if node.text.strip():
                return node.text
        elif isinstance(node, IfNode | WithNode | RangeNode):
            for child in (node.body, node.else_body or ()):
                text = _first_text(child)
                if text is not None:
                    return text
            return None
        elif isinstance(node, ActionNode | TemplateNode):
            return None
    return None


class Template:
    """A parsed template. Immutable once built; rendering is thread-safe."""

    __slots__ = ("_cut", "_defines", "_root", "_vars", "source")

    def __init__(self, source: str) -> None:
        tree = parse_tree(source)
        root = tree.root
        names: set[str] = set()
        for body in (root, *tree.defines.values()):
            for node in body:
                _identifiers(node, names)
        if "messages" not in names and "response" not in names:
            # Ollama's rule: a template that never shows the response gets it appended.
            root = (*root, _RESPONSE)
            names.add("response")
        self.source = source
        self._root = root
        self._defines = tree.defines
        self._vars = frozenset(names)
        self._cut: Body | None = None

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def __str__(self) -> str:
        return self.source

    @property
    def vars(self) -> frozenset[str]:
        """Every field/variable name the template mentions, lower-cased (Ollama's Vars)."""
        return self._vars

    def uses(self, name: str) -> bool:
        """Whether the template mentions the field ``name`` (case-insensitive), anywhere
        in any field chain: ``uses("Tools")``, ``uses("Suffix")``, ``uses("Messages")``."""
        return name.lower() in self._vars

    def tool_call_text(self) -> str | None:
        """The literal text the template writes first where it shows a message's tool
        calls (inside the first if/with/range over ``.ToolCalls``), e.g. ``"<tool_call>\n"``
        or ``'{"name": "'``; ``None`` when the template never shows tool calls, or writes
        nothing literal before the first value. Tool-call parsers take their tag from it,
        as Ollama does."""
        control = _tool_calls_control(self._root)
        return None if control is None else _first_text(control.body)

    def render(self, data: dict[str, Any]) -> str:
        """Execute the template with ``data`` as dot; raises TemplateError on failure."""
        return execute(self._root, self._defines, data)

    def render_until_response(self, data: dict[str, Any]) -> str:
        """Render only up to (and including) the first ``{{ .Response }}``."""
        if self._cut is None:
            self._cut = _cut_after_response(self._root)
        return execute(self._cut, self._defines, data)


def parse(text: str) -> Template:
    """Parse template source; raises TemplateError with the line.

    Callers that render per request keep the result (``ModelCatalog`` does, per content).
    """
    return Template(text)
