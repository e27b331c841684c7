"""Execute a parse tree against data, with Go text/template semantics and
``missingkey=zero`` leniency: a missing field is nil, which is false and prints nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nexus.template.errors import TemplateError
from nexus.template.funcs import FUNCS, ExecError
from nexus.template.nodes import (
    ActionNode,
    Body,
    BreakNode,
    ChainNode,
    CommandNode,
    ConstNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    NilNode,
    Node,
    PipeNode,
    RangeNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
)
from nexus.template.values import Struct, print_value, sorted_keys, truth, type_name

#: How deeply ``{{template}}`` calls may nest before we assume runaway recursion.
MAX_DEPTH = 200


class _Missing:
    """No value handed down a pipeline (distinct from nil)."""

    __slots__ = ()


MISSING: Any = _Missing()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _field(receiver: Any, name: str) -> Any:
    if isinstance(receiver, dict):
        return receiver.get(name)
    if receiver is None:
        return None
    if isinstance(receiver, str | int | float | list | tuple):
        raise ExecError(f"can't evaluate field {name} in type {type_name(receiver)}")
    return getattr(receiver, name, None)


def _fields(receiver: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        receiver = _field(receiver, name)
    return receiver


def _iterate(value: Any) -> Iterator[tuple[Any, Any]]:
    if value is None:
        return iter(())
    if isinstance(value, list | tuple):
        return enumerate(value)
    if isinstance(value, Struct):
        raise ExecError(f"range can't iterate over {value.kind}")
    if isinstance(value, dict):
        return ((k, value[k]) for k in sorted_keys(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return ((i, i) for i in range(value))
    raise ExecError(f"range can't iterate over {type_name(value)}")


class Executor:
    """State of one execution: output, variable stack, defined templates."""

    __slots__ = ("defines", "depth", "out", "vars")

    def __init__(self, defines: dict[str, Body]) -> None:
        self.defines = defines
        self.out: list[str] = []
        self.vars: list[list[Any]] = []
        self.depth = 0

    def run(self, body: Body, data: Any) -> str:
        self.vars = [["$", data]]
        self.walk(body, data)
        return "".join(self.out)

    # -- statements

    def walk(self, body: Body, dot: Any) -> None:
        out = self.out
        for node in body:
            if type(node) is TextNode:
                out.append(node.text)
            elif type(node) is ActionNode:
                pipe = node.pipe
                value = self.pipe(pipe, dot)
                if not pipe.decl:
                    out.append(print_value(value))
            elif type(node) is IfNode or type(node) is WithNode:
                self.branch(node, dot)
            elif type(node) is RangeNode:
                self.range(node, dot)
            elif type(node) is TemplateNode:
                self.call_template(node, dot)
            elif type(node) is BreakNode:
                raise _Break
            elif type(node) is ContinueNode:
                raise _Continue

    def branch(self, node: IfNode | WithNode, dot: Any) -> None:
        mark = len(self.vars)
        value = self.pipe(node.pipe, dot)
        if truth(value):
            self.walk(node.body, value if type(node) is WithNode else dot)
        elif node.else_body is not None:
            self.walk(node.else_body, dot)
        del self.vars[mark:]

    def range(self, node: RangeNode, dot: Any) -> None:
        mark = len(self.vars)
        pipe = node.pipe
        value = self.pipe_value(pipe, dot)
        try:
            items = _iterate(value)
        except ExecError as exc:
            raise TemplateError(str(exc), line=node.line) from None
        decl = pipe.decl
        declare = bool(decl) and not pipe.is_assign
        if declare:
            for name in decl:
                self.vars.append([name, value])
        inner = len(self.vars)
        ran = False
        for index, elem in items:
            ran = True
            if decl:
                if len(decl) == 2:
                    self.set_or_top(decl[0], index, declare, inner - 2)
                    self.set_or_top(decl[1], elem, declare, inner - 1)
                else:
                    self.set_or_top(decl[0], elem, declare, inner - 1)
            try:
                self.walk(node.body, elem)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.vars[inner:]
        if not ran and node.else_body is not None:
            self.walk(node.else_body, dot)
        del self.vars[mark:]

    def set_or_top(self, name: str, value: Any, declare: bool, slot: int) -> None:
        if declare:
            self.vars[slot][1] = value
        else:
            self.assign(name, value, 0)

    def call_template(self, node: TemplateNode, dot: Any) -> None:
        body = self.defines.get(node.name)
        if body is None:
            raise TemplateError(f'no such template "{node.name}"', line=node.line)
        new_dot = self.pipe(node.pipe, dot) if node.pipe is not None else None
        if self.depth >= MAX_DEPTH:
            raise TemplateError(
                f'exceeded maximum template depth ({MAX_DEPTH}) calling "{node.name}"',
                line=node.line,
            )
        saved = self.vars
        self.vars = [["$", new_dot]]
        self.depth += 1
        try:
            self.walk(body, new_dot)
        finally:
            self.vars = saved
            self.depth -= 1

    # -- variables

    def lookup(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise ExecError(f"undefined variable: {name}")

    def assign(self, name: str, value: Any, line: int) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise TemplateError(f"undefined variable: {name}", line=line or None)

    # -- expressions

    def pipe_value(self, pipe: PipeNode, dot: Any) -> Any:
        value = MISSING
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        return value

    def pipe(self, pipe: PipeNode, dot: Any) -> Any:
        value = MISSING
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        if pipe.decl:
            if pipe.is_assign:
                for name in pipe.decl:
                    self.assign(name, value, pipe.line)
            else:
                for name in pipe.decl:
                    self.vars.append([name, value])
        return value

    def command(self, cmd: CommandNode, dot: Any, final: Any) -> Any:
        args = cmd.args
        first = args[0]
        try:
            if type(first) is IdentifierNode:
                return self.call(first.name, args[1:], dot, final)
            if len(args) > 1 or final is not MISSING:
                raise ExecError(f"can't give argument to non-function {_describe(first)}")
            return self.arg(first, dot)
        except ExecError as exc:
            raise TemplateError(str(exc), line=cmd.line) from None

    def arg(self, node: Node, dot: Any) -> Any:
        if type(node) is FieldNode:
            return _fields(dot, node.idents)
        if type(node) is ConstNode:
            return node.value
        if type(node) is VariableNode:
            value = self.lookup(node.name)
            return _fields(value, node.fields) if node.fields else value
        if type(node) is DotNode:
            return dot
        if type(node) is PipeNode:
            return self.pipe(node, dot)
        if type(node) is IdentifierNode:
            return self.call(node.name, (), dot, MISSING)
        if type(node) is ChainNode:
            return _fields(self.arg(node.node, dot), node.fields)
        if type(node) is NilNode:
            return None
        raise ExecError(f"can't evaluate {_describe(node)}")

    def call(self, name: str, arg_nodes: tuple[Node, ...], dot: Any, final: Any) -> Any:
        fn, least, most = FUNCS[name]
        count = len(arg_nodes) + (final is not MISSING)
        if count < least or (most is not None and count > most):
            want = f"at least {least}" if most is None else str(least)
            raise ExecError(f"wrong number of args for {name}: want {want} got {count}")
        if name == "and" or name == "or":
            want_truth = name == "or"
            value = None
            for node in arg_nodes:
                value = self.arg(node, dot)
                if truth(value) is want_truth:
                    return value
            return final if final is not MISSING else value
        args = [self.arg(node, dot) for node in arg_nodes]
        if final is not MISSING:
            args.append(final)
        return fn(*args)


def _describe(node: Node) -> str:
    if isinstance(node, FieldNode):
        return "." + ".".join(node.idents)
    if isinstance(node, VariableNode):
        return node.name + "".join("." + f for f in node.fields)
    if isinstance(node, ConstNode):
        return repr(node.value)
    if isinstance(node, DotNode):
        return "."
    if isinstance(node, NilNode):
        return "nil"
    return type(node).__name__


def execute(body: Body, defines: dict[str, Body], data: Any) -> str:
    """Render ``body`` with ``data`` as dot and ``$``."""
    try:
        return Executor(defines).run(body, data)
    except (_Break, _Continue):  # pragma: no cover - the parser keeps these inside range
        raise TemplateError("break or continue outside range") from None
