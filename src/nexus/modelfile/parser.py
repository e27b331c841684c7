"""Modelfile parsing, as Ollama reads them.

Keywords are case-insensitive; a value is the rest of the line, a ``"quoted"`` string, or a
triple-quoted block (three double quotes) that may span lines. Errors name the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.errors import BadRequest
from nexus.options import validate_parameters

COMMANDS = (
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "draft",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
)
MESSAGE_ROLES = ("system", "user", "assistant")
_SEMVER = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")


class ModelfileError(BadRequest):
    """Raised when a Modelfile does not parse; the message names the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"(line {line}): {message}")
        self.line = line


@dataclass(frozen=True)
class Command:
    name: str
    args: str
    line: int
    #: For PARAMETER and MESSAGE: the first word (parameter name or role).
    key: str = ""


@dataclass
class Modelfile:
    commands: list[Command] = field(default_factory=list)

    def first(self, name: str) -> Command | None:
        return next((c for c in self.commands if c.name == name), None)

    def all(self, name: str) -> list[Command]:
        return [c for c in self.commands if c.name == name]


def parse_modelfile(text: str) -> Modelfile:
    text = text.removeprefix("\ufeff")
    commands: list[Command] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i].rstrip("\r")
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = f"{more} {rest}".strip()
        name = word.lower()
        if name not in COMMANDS:
            quoted = ", ".join(f'"{c}"' for c in COMMANDS[:-1])
            raise ModelfileError(number, f'command must be one of {quoted}, or "requires"')
        rest = rest.strip()
        key = ""
        if name in ("parameter", "message"):
            key, _, rest = rest.partition(" ")
            if "\t" in key:
                key, _, more = key.partition("\t")
                rest = f"{more} {rest}"
            rest = rest.strip()
            if not key:
                raise ModelfileError(number, f"missing value for {name}")
        value, i = _value(rest, lines, i, number)
        if name != "message" and name not in ("system", "template", "license") and not value:
            raise ModelfileError(number, f"missing value for {name}")
        if name == "message" and key.lower() not in MESSAGE_ROLES:
            raise ModelfileError(
                number, 'message role must be one of "system", "user", or "assistant"'
            )
        if name == "requires" and not _SEMVER.match(value):
            raise ModelfileError(number, "requires must be a valid semver (e.g. 0.14.0)")
        commands.append(Command(name=name, args=value, line=number, key=key))
    if not any(c.name == "from" for c in commands):
        raise BadRequest("no FROM line")
    return Modelfile(commands)


def _value(rest: str, lines: list[str], i: int, number: int) -> tuple[str, int]:
    """The value starting at ``rest``; triple-quoted values may consume following lines."""
    if rest.startswith('"""'):
        body = rest[3:]
        end = body.find('"""')
        if end >= 0:
            _trailing(body[end + 3 :], number)
            return body[:end], i
        parts = [body]
        while i < len(lines):
            line = lines[i].rstrip("\r")
            i += 1
            end = line.find('"""')
            if end >= 0:
                parts.append(line[:end])
                _trailing(line[end + 3 :], i)
                return "\n".join(parts), i
            parts.append(line)
        raise ModelfileError(number, 'unterminated """ string')
    if rest.startswith('"'):
        out: list[str] = []
        text, j = rest, 1
        while True:
            while j < len(text):
                ch = text[j]
                if ch == "\\" and j + 1 < len(text) and text[j + 1] in '"\\':
                    out.append(text[j + 1])
                    j += 2
                    continue
                if ch == '"':
                    _trailing(text[j + 1 :], number)
                    return "".join(out), i
                out.append(ch)
                j += 1
            if i >= len(lines):  # a quoted value may span lines, as Ollama allows
                raise ModelfileError(number, 'unterminated " string')
            out.append("\n")
            text, j = lines[i].rstrip("\r"), 0
            i += 1
    return rest.strip(), i


def _trailing(text: str, number: int) -> None:
    if text.strip() and not text.strip().startswith("#"):
        raise ModelfileError(number, f"unexpected text after closing quote: {text.strip()!r}")


@dataclass
class CreatePlan:
    """A Modelfile as an ``/api/create`` request, plus the local files it names."""

    request: dict[str, Any]
    #: For ``files``/``adapters`` entries: the local path behind each file name.
    local_files: dict[str, Path] = field(default_factory=dict)


def is_local_path(value: str) -> bool:
    return (
        value.startswith(("/", "./", "../", "~"))
        or value.lower().endswith(".gguf")
        or (len(value) > 1 and value[1] == ":")
    )


def resolve_path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def to_create_request(modelfile: Modelfile, model: str, base: Path) -> CreatePlan:
    """Build the ``/api/create`` body; FROM/ADAPTER paths resolve against ``base``."""
    request: dict[str, Any] = {"model": model}
    plan = CreatePlan(request)
    raw_params: dict[str, list[str]] = {}
    messages: list[dict[str, str]] = []
    licenses: list[str] = []
    for command in modelfile.commands:
        if command.name == "from":
            _from(command, base, plan)
        elif command.name == "adapter":
            path = resolve_path(command.args, base)
            plan.local_files[path.name] = path
            request.setdefault("adapters", {})[path.name] = str(path)
        elif command.name == "parameter":
            raw_params.setdefault(command.key, []).append(command.args)
        elif command.name == "message":
            messages.append({"role": command.key.lower(), "content": command.args})
        elif command.name == "license":
            licenses.append(command.args)
        elif command.name in ("template", "system", "renderer", "parser", "requires"):
            request[command.name] = command.args
    if raw_params:
        flat: dict[str, Any] = {k: v if k == "stop" else v[-1] for k, v in raw_params.items()}
        try:
            request["parameters"] = validate_parameters(flat)
        except BadRequest as exc:
            line = next(c.line for c in modelfile.all("parameter"))
            raise ModelfileError(line, exc.message) from None
    if messages:
        request["messages"] = messages
    if licenses:
        request["license"] = licenses
    return plan


def _from(command: Command, base: Path, plan: CreatePlan) -> None:
    value = command.args
    if not is_local_path(value) and not resolve_path(value, base).exists():
        plan.request["from"] = value
        return
    path = resolve_path(value, base)
    if path.is_dir():
        # every GGUF of a folder: the weights and, for a vision model, its projector
        ggufs = sorted(path.glob("*.gguf"))
        if not ggufs:
            raise ModelfileError(command.line, f"no .gguf file in directory {path}")
        for gguf in ggufs:
            plan.local_files[gguf.name] = gguf
            plan.request.setdefault("files", {})[gguf.name] = str(gguf)
        return
    if not path.exists():
        raise ModelfileError(command.line, f"no such file: {path}")
    plan.local_files[path.name] = path
    plan.request.setdefault("files", {})[path.name] = str(path)
