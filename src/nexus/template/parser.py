"""Build the parse tree from tokens, checking what Go checks at parse time: balanced
control structures, known functions, declared variables, ``break``/``continue`` placement
and template names."""

from __future__ import annotations

from dataclasses import dataclass, field

from nexus.template import lexer as lx
from nexus.template.errors import TemplateError
from nexus.template.funcs import FUNCS
from nexus.template.lexer import Token, describe
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


@dataclass(slots=True)
class Tree:
    """A parsed template: the main body and the templates it defines."""

    root: Body
    defines: dict[str, Body] = field(default_factory=dict)


_TERMS = frozenset(
    {lx.FIELD, lx.STRING, lx.NUMBER, lx.BOOL, lx.DOT, lx.VAR, lx.IDENT, lx.NIL, lx.LPAREN}
)


def _is_empty(body: Body) -> bool:
    return all(isinstance(n, TextNode) and not n.text.strip() for n in body)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.defines: dict[str, Body] = {}
        self.calls: list[tuple[str, int]] = []

    # -- token access

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != lx.EOF:
            self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> TemplateError:
        return TemplateError(message, line=(tok or self.peek()).line)

    def expect(self, kind: str, context: str) -> Token:
        tok = self.next()
        if tok.kind != kind:
            raise self.error(f"unexpected {describe(tok)} in {context}", tok)
        return tok

    def is_keyword(self, word: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == lx.KEYWORD and tok.value == word

    # -- structure

    def parse(self) -> Tree:
        nodes: list[Node] = []
        while True:
            tok = self.next()
            if tok.kind == lx.EOF:
                break
            if tok.kind == lx.TEXT:
                nodes.append(TextNode(tok.value))
                continue
            # tok is "{{"
            if self.is_keyword("define"):
                self.next()
                self.define()
                continue
            if self.is_keyword("end") or self.is_keyword("else"):
                raise self.error(f"unexpected {describe(self.peek())}")
            nodes.append(self.action())
        for name, line in self.calls:
            if name not in self.defines:
                raise TemplateError(f'no such template "{name}"', line=line)
        return Tree(tuple(nodes), self.defines)

    def item_list(self) -> tuple[Body, str, Token]:
        """Nodes up to ``{{end}}`` or ``{{else``; returns them, which one ended them, and
        its token. ``{{end}}`` is consumed whole; after ``else`` the rest of the action is
        left to the caller."""
        nodes: list[Node] = []
        while True:
            tok = self.next()
            if tok.kind == lx.EOF:
                raise self.error("unexpected EOF: missing {{end}}", tok)
            if tok.kind == lx.TEXT:
                nodes.append(TextNode(tok.value))
                continue
            head = self.peek()
            if head.kind == lx.KEYWORD and head.value in ("end", "else"):
                self.next()
                if head.value == "end":
                    self.expect(lx.RIGHT, "end")
                return tuple(nodes), head.value, head
            if head.kind == lx.KEYWORD and head.value == "define":
                raise self.error("{{define}} is only allowed at the top level", head)
            nodes.append(self.action())

    def action(self) -> Node:
        """One action after its ``{{``."""
        tok = self.peek()
        if tok.kind == lx.KEYWORD:
            word = tok.value
            self.next()
            if word in ("if", "with", "range"):
                return self.control(word, tok)
            if word in ("break", "continue"):
                if not self.range_depth:
                    raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}", tok)
                self.expect(lx.RIGHT, word)
                return BreakNode(tok.line) if word == "break" else ContinueNode(tok.line)
            if word == "template":
                return self.template_call(tok)
            if word == "block":
                return self.block(tok)
            raise self.error(f"unexpected {describe(tok)}", tok)
        pipe = self.pipeline("command", lx.RIGHT)
        return ActionNode(tok.line, pipe)

    def control(self, context: str, tok: Token) -> Node:
        mark = len(self.vars)
        pipe = self.pipeline(context, lx.RIGHT)
        if context == "range":
            self.range_depth += 1
        body, ended, end_tok = self.item_list()
        if context == "range":
            self.range_depth -= 1
        else_body: Body | None = None
        if ended == "else":
            if context in ("if", "with") and self.is_keyword(context):
                # "{{else if ...}}" / "{{else with ...}}": a nested control sharing our {{end}}.
                nested_tok = self.next()
                else_body = (self.control(context, nested_tok),)
            else:
                if self.peek().kind != lx.RIGHT:
                    raise self.error(f"unexpected {describe(self.peek())} in {{{{else}}}}")
                self.next()
                else_body, ended, end_tok = self.item_list()
                if ended != "end":
                    raise self.error(
                        f"expected {{{{end}}}}; found {{{{else}}}} in {context}", end_tok
                    )
        del self.vars[mark:]
        if context == "if":
            return IfNode(tok.line, pipe, body, else_body)
        if context == "with":
            return WithNode(tok.line, pipe, body, else_body)
        return RangeNode(tok.line, pipe, body, else_body)

    def template_name(self, context: str) -> str:
        tok = self.next()
        if tok.kind != lx.STRING:
            raise self.error(f"unexpected {describe(tok)} in {context}", tok)
        return str(tok.value)

    def template_call(self, tok: Token) -> Node:
        name = self.template_name("template clause")
        pipe = None
        if self.peek().kind == lx.RIGHT:
            self.next()
        else:
            pipe = self.pipeline("template clause", lx.RIGHT)
        self.calls.append((name, tok.line))
        return TemplateNode(tok.line, name, pipe)

    def sub_template(self, name: str, context: str, tok: Token) -> None:
        """Parse a ``define``/``block`` body (fresh variables, outside any range)."""
        saved = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        body, ended, end_tok = self.item_list()
        self.vars, self.range_depth = saved
        if ended != "end":
            raise self.error(f"unexpected {{{{else}}}} in {context}", end_tok)
        old = self.defines.get(name)
        if old is not None and not _is_empty(old) and not _is_empty(body):
            raise self.error(f'multiple definition of template "{name}"', tok)
        if old is None or _is_empty(old):
            self.defines[name] = body

    def define(self) -> None:
        tok = self.peek()
        name = self.template_name("define clause")
        self.expect(lx.RIGHT, "define clause")
        self.sub_template(name, "define clause", tok)

    def block(self, tok: Token) -> Node:
        name = self.template_name("block clause")
        pipe = self.pipeline("block clause", lx.RIGHT)
        self.sub_template(name, "block clause", tok)
        return TemplateNode(tok.line, name, pipe)

    # -- pipelines

    def pipeline(self, context: str, end: str) -> PipeNode:
        start = self.peek()
        decl: tuple[str, ...] = ()
        is_assign = False
        if start.kind == lx.VAR:
            names = [start.value]
            ahead = 1
            if self.peek(1).kind == lx.COMMA:
                if context != "range":
                    raise self.error(f"too many declarations in {context}")
                if self.peek(2).kind != lx.VAR:
                    raise self.error("range can only initialize variables")
                names.append(self.peek(2).value)
                ahead = 3
                if self.peek(3).kind not in (lx.DECLARE, lx.ASSIGN):
                    raise self.error("expected := or = after range variables")
            op = self.peek(ahead)
            if op.kind in (lx.DECLARE, lx.ASSIGN):
                self.i += ahead + 1
                decl = tuple(names)
                is_assign = op.kind == lx.ASSIGN
                if is_assign:
                    for name in names:
                        if name not in self.vars:
                            raise self.error(f'undefined variable "{name}"', start)
                else:
                    self.vars.extend(names)
        cmds: list[CommandNode] = []
        while True:
            tok = self.peek()
            args = self.command()
            if not args:
                what = f"missing value for {context}" if not cmds else "missing command"
                raise self.error(what, tok)
            if cmds and isinstance(args[0], ConstNode | DotNode | NilNode):
                raise self.error(f"non executable command in pipeline stage {len(cmds) + 1}", tok)
            if isinstance(args[0], NilNode):
                raise self.error("nil is not a command", tok)
            cmds.append(CommandNode(tok.line, args))
            tok = self.next()
            if tok.kind == lx.PIPE:
                continue
            if tok.kind == end:
                break
            if end == lx.RPAREN and tok.kind == lx.RIGHT:
                raise self.error("unclosed left paren", tok)
            raise self.error(f"unexpected {describe(tok)} in {context}", tok)
        return PipeNode(start.line, decl, is_assign, tuple(cmds))

    def command(self) -> tuple[Node, ...]:
        args: list[Node] = []
        while self.peek().kind not in (lx.PIPE, lx.RIGHT, lx.RPAREN, lx.EOF):
            tok = self.peek()
            node = self.operand()
            if node is None:
                raise self.error(f"unexpected {describe(tok)} in operand", tok)
            args.append(node)
        return tuple(args)

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        fields: list[str] = []
        while self.peek().kind == lx.FIELD and not self.peek().spaced:
            fields.append(self.next().value)
        if not fields:
            return node
        if isinstance(node, FieldNode):
            return FieldNode(node.idents + tuple(fields))
        if isinstance(node, VariableNode):
            return VariableNode(node.name, node.fields + tuple(fields))
        if isinstance(node, ConstNode | DotNode | NilNode):
            raise self.error("unexpected . after term")
        return ChainNode(node, tuple(fields))

    def term(self) -> Node | None:
        tok = self.peek()
        kind = tok.kind
        if kind not in _TERMS:
            return None
        self.i += 1
        if kind == lx.FIELD:
            return FieldNode((tok.value,))
        if kind == lx.STRING or kind == lx.NUMBER or kind == lx.BOOL:
            return ConstNode(tok.value)
        if kind == lx.DOT:
            return DotNode()
        if kind == lx.VAR:
            if tok.value not in self.vars:
                raise self.error(f'undefined variable "{tok.value}"', tok)
            return VariableNode(tok.value, ())
        if kind == lx.IDENT:
            if tok.value not in FUNCS:
                raise self.error(f'function "{tok.value}" not defined', tok)
            return IdentifierNode(tok.value)
        if kind == lx.NIL:
            return NilNode()
        return self.pipeline("parenthesized pipeline", lx.RPAREN)  # "("


def parse_tree(src: str) -> Tree:
    """Parse template source into a :class:`Tree`; raises :class:`TemplateError`."""
    return _Parser(lx.lex(src)).parse()
