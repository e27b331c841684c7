"""The parse tree of a template. Bodies are plain tuples of nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class TextNode:
    text: str


@dataclass(slots=True)
class FieldNode:
    """``.A.B``: fields looked up on dot."""

    idents: tuple[str, ...]


@dataclass(slots=True)
class VariableNode:
    """``$x.A.B`` (``name`` is ``$x``; ``fields`` may be empty)."""

    name: str
    fields: tuple[str, ...]


@dataclass(slots=True)
class ChainNode:
    """``(pipeline).A.B``, or a function's result followed by fields."""

    node: Node
    fields: tuple[str, ...]


@dataclass(slots=True)
class DotNode:
    pass


@dataclass(slots=True)
class NilNode:
    pass


@dataclass(slots=True)
class IdentifierNode:
    """A function name."""

    name: str


@dataclass(slots=True)
class ConstNode:
    """A string, number or bool literal."""

    value: Any


@dataclass(slots=True)
class CommandNode:
    line: int
    args: tuple[Node, ...]


@dataclass(slots=True)
class PipeNode:
    line: int
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[CommandNode, ...]


@dataclass(slots=True)
class ActionNode:
    line: int
    pipe: PipeNode


@dataclass(slots=True)
class IfNode:
    line: int
    pipe: PipeNode
    body: tuple[Node, ...]
    else_body: tuple[Node, ...] | None


@dataclass(slots=True)
class WithNode:
    line: int
    pipe: PipeNode
    body: tuple[Node, ...]
    else_body: tuple[Node, ...] | None


@dataclass(slots=True)
class RangeNode:
    line: int
    pipe: PipeNode
    body: tuple[Node, ...]
    else_body: tuple[Node, ...] | None


@dataclass(slots=True)
class BreakNode:
    line: int


@dataclass(slots=True)
class ContinueNode:
    line: int


@dataclass(slots=True)
class TemplateNode:
    line: int
    name: str
    pipe: PipeNode | None


Node = (
    TextNode
    | FieldNode
    | VariableNode
    | ChainNode
    | DotNode
    | NilNode
    | IdentifierNode
    | ConstNode
    | CommandNode
    | PipeNode
    | ActionNode
    | IfNode
    | WithNode
    | RangeNode
    | BreakNode
    | ContinueNode
    | TemplateNode
)
Body = tuple[Node, ...]
