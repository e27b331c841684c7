"""Split template source into tokens: text runs, and the words inside ``{{ }}`` actions.

Trim markers (``{{- `` and `` -}}``) are applied here, and comments dropped, so the
parser only sees text that is really output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nexus.template.errors import TemplateError

# Token kinds.
TEXT = "text"
LEFT = "{{"
RIGHT = "}}"
EOF = "EOF"
IDENT = "identifier"
FIELD = "field"
VAR = "variable"
DOT = "."
STRING = "string"
NUMBER = "number"
BOOL = "bool"
NIL = "nil"
DECLARE = ":="
ASSIGN = "="
PIPE = "|"
LPAREN = "("
RPAREN = ")"
COMMA = ","
KEYWORD = "keyword"

KEYWORDS = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"}
)

_SPACE = " \t\r\n"
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VAR_RE = re.compile(r"\$[A-Za-z0-9_]*")
_NUMBER_RE = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
    r"|0[oObB][0-9_]+"
    r"|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?)i?"
)
_LEGACY_OCTAL_RE = re.compile(r"0[0-7_]+")
_ESCAPE_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{3}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


@dataclass(slots=True)
class Token:
    kind: str
    value: Any
    line: int
    #: Whether whitespace came right before this token (separates ``.A .B`` from ``.A.B``).
    spaced: bool = False


def describe(tok: Token) -> str:
    """How a token is named in error messages."""
    if tok.kind == EOF:
        return "end of template"
    if tok.kind == KEYWORD:
        return "{{" + str(tok.value) + "}}"
    if tok.kind == FIELD:
        return f"<.{tok.value}>"
    if tok.kind in (IDENT, VAR, NUMBER, BOOL):
        return f"<{tok.value}>"
    if tok.kind == STRING:
        return f"string {tok.value!r}"
    if tok.kind == TEXT:
        return "text"
    return f'"{tok.kind}"'


def _unquote(body: str, line: int) -> str:
    """Decode Go escape sequences inside a quoted string or character literal."""
    if "\\" not in body:
        return body
    raw = bytearray()
    pos = 0
    for m in _ESCAPE_RE.finditer(body):
        raw += body[pos : m.start()].encode()
        esc = m.group(1)
        head = esc[0]
        if head == "x":
            raw.append(int(esc[1:], 16))
        elif head in "01234567" and len(esc) == 3:
            value = int(esc, 8)
            if value > 255:
                raise TemplateError("invalid octal escape in string", line=line)
            raw.append(value)
        elif head in "uU" and len(esc) > 1:
            raw += chr(int(esc[1:], 16)).encode("utf-8", "surrogatepass")
        elif head in _SIMPLE_ESCAPES:
            raw += _SIMPLE_ESCAPES[head].encode()
        else:
            raise TemplateError(f"invalid escape sequence \\{head} in string", line=line)
        pos = m.end()
    raw += body[pos:].encode()
    return raw.decode("utf-8", "replace")


def parse_number(text: str, line: int) -> int | float:
    """Convert a Go number literal: ints stay ints, anything with ``.``/exponent is a float."""
    bad = TemplateError(f"bad number syntax: {text!r}", line=line)
    if text.endswith("i"):
        raise TemplateError(f"complex numbers are not supported: {text!r}", line=line)
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-").replace("_", "")
    lower = body.lower()
    try:
        if lower.startswith("0x"):
            if "." in lower or "p" in lower:
                return sign * float.fromhex(body)
            return sign * int(body, 16)
        if lower.startswith(("0o", "0b")):
            return sign * int(body, 0)
        if any(c in lower for c in ".e"):
            return sign * float(body)
        if _LEGACY_OCTAL_RE.fullmatch(text.lstrip("+-")):
            return sign * int(body, 8)
        return sign * int(body, 10)
    except ValueError:
        raise bad from None


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src = src
        self.n = len(src)
        self.line = 1
        self.tokens: list[Token] = []

    def error(self, message: str) -> TemplateError:
        return TemplateError(message, line=self.line)

    def emit(self, kind: str, value: Any, spaced: bool = False) -> None:
        self.tokens.append(Token(kind, value, self.line, spaced))

    def at_right(self, pos: int) -> int:
        """If a right delimiter (optionally trimmed) starts at ``pos``, its length; else 0.

        The length of a trimmed delimiter `` -}}`` is 4, so callers can tell them apart.
        """
        src = self.src
        if src.startswith("}}", pos):
            return 2
        if pos < self.n and src[pos] in _SPACE and src.startswith("-}}", pos + 1):
            return 4
        return 0

    def run(self) -> list[Token]:
        src, n = self.src, self.n
        pos = 0
        trim_next = False
        while True:
            start = src.find("{{", pos)
            end = n if start < 0 else start
            marker = src[start + 2 : start + 4] if start >= 0 else ""
            trim_left = len(marker) == 2 and marker[0] == "-" and marker[1] in _SPACE
            text = src[pos:end]
            text_line = self.line
            self.line += text.count("\n")
            if trim_next:
                text = text.lstrip(_SPACE)
            if trim_left:
                text = text.rstrip(_SPACE)
            if text:
                self.tokens.append(Token(TEXT, text, text_line))
            if start < 0:
                break
            inner = start + (4 if trim_left else 2)
            if trim_left and marker[1] == "\n":
                self.line += 1
            if src.startswith("/*", inner):
                pos, trim_next = self.comment(inner)
            else:
                self.emit(LEFT, None)
                pos, trim_next = self.action(inner)
        self.emit(EOF, None)
        return self.tokens

    def comment(self, pos: int) -> tuple[int, bool]:
        close = self.src.find("*/", pos + 2)
        if close < 0:
            raise self.error("unclosed comment")
        self.line += self.src.count("\n", pos, close)
        width = self.at_right(close + 2)
        if not width:
            raise self.error("comment ends before closing delimiter")
        if width == 4 and self.src[close + 2] == "\n":
            self.line += 1
        return close + 2 + width, width == 4

    def action(self, pos: int) -> tuple[int, bool]:
        src, n = self.src, self.n
        spaced = True
        parens = 0
        while True:
            width = self.at_right(pos)
            if width:
                if parens:
                    raise self.error("unclosed left paren")
                self.emit(RIGHT, None)
                if width == 4 and src[pos] == "\n":
                    self.line += 1
                return pos + width, width == 4
            if pos >= n:
                raise self.error("unclosed action")
            c = src[pos]
            if c in _SPACE:
                if c == "\n":
                    self.line += 1
                pos += 1
                spaced = True
                continue
            if c == ":" and src.startswith(":=", pos):
                self.emit(DECLARE, None, spaced)
                pos += 2
            elif c == "=":
                self.emit(ASSIGN, None, spaced)
                pos += 1
            elif c == "|":
                self.emit(PIPE, None, spaced)
                pos += 1
            elif c == "(":
                self.emit(LPAREN, None, spaced)
                parens += 1
                pos += 1
            elif c == ")":
                if not parens:
                    raise self.error("unexpected right paren")
                parens -= 1
                self.emit(RPAREN, None, spaced)
                pos += 1
            elif c == ",":
                self.emit(COMMA, None, spaced)
                pos += 1
            elif c == '"':
                pos = self.quoted(pos, spaced)
            elif c == "`":
                close = src.find("`", pos + 1)
                if close < 0:
                    raise self.error("unterminated raw quoted string")
                self.emit(STRING, src[pos + 1 : close], spaced)
                self.line += src.count("\n", pos, close)
                pos = close + 1
            elif c == "'":
                pos = self.char(pos, spaced)
            elif c == "$":
                m = _VAR_RE.match(src, pos)
                assert m is not None
                self.emit(VAR, m.group(), spaced)
                pos = m.end()
            elif c == "." and pos + 1 < n and (src[pos + 1].isalpha() or src[pos + 1] == "_"):
                m = _IDENT_RE.match(src, pos + 1)
                assert m is not None
                self.emit(FIELD, m.group(), spaced)
                pos = m.end()
            elif c.isdigit() or c in "+-" or (c == "." and src[pos + 1 : pos + 2].isdigit()):
                m = _NUMBER_RE.match(src, pos)
                text = m.group() if m else ""
                end = pos + len(text)
                if (
                    not text
                    or text in "+-"
                    or (end < n and (src[end].isalnum() or src[end] in "."))
                ):
                    bad = src[pos : end + 1] if text else c
                    raise self.error(f"bad number syntax: {bad!r}")
                self.emit(NUMBER, parse_number(text, self.line), spaced)
                pos = end
            elif c == ".":
                self.emit(DOT, None, spaced)
                pos += 1
            elif c.isalpha() or c == "_":
                m = _IDENT_RE.match(src, pos)
                assert m is not None
                word = m.group()
                if word in ("true", "false"):
                    self.emit(BOOL, word == "true", spaced)
                elif word == "nil":
                    self.emit(NIL, None, spaced)
                elif word in KEYWORDS:
                    self.emit(KEYWORD, word, spaced)
                else:
                    self.emit(IDENT, word, spaced)
                pos = m.end()
            else:
                raise self.error(f"unexpected {c!r} in action")
            spaced = False

    def quoted(self, pos: int, spaced: bool) -> int:
        src, n = self.src, self.n
        i = pos + 1
        while True:
            if i >= n or src[i] == "\n":
                raise self.error("unterminated quoted string")
            c = src[i]
            if c == "\\":
                if i + 1 >= n or src[i + 1] == "\n":
                    raise self.error("unterminated quoted string")
                i += 2
                continue
            if c == '"':
                break
            i += 1
        self.emit(STRING, _unquote(src[pos + 1 : i], self.line), spaced)
        return i + 1

    def char(self, pos: int, spaced: bool) -> int:
        src, n = self.src, self.n
        i = pos + 1
        while True:
            if i >= n or src[i] == "\n":
                raise self.error("unterminated character constant")
            if src[i] == "\\":
                i += 2
                continue
            if src[i] == "'":
                break
            i += 1
        value = _unquote(src[pos + 1 : i], self.line)
        if len(value) != 1:
            raise self.error(f"malformed character constant: {src[pos : i + 1]}")
        self.emit(NUMBER, ord(value), spaced)
        return i + 1


def lex(src: str) -> list[Token]:
    """Tokenise template source; raises :class:`TemplateError` on malformed input."""
    return _Lexer(src).run()
