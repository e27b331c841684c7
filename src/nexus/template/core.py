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
