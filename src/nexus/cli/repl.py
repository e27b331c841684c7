"""The interactive chat of ``run``: a line editor, slash commands, streamed answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nexus.cli import repl_help
from nexus.cli.client import Client
from nexus.cli.console import Consoles
from nexus.cli.errors import CLIError, NotConnected, ServerError
from nexus.cli.line_editor import LineEditor, default_history_file
from nexus.cli.session import Session, chat_turn, load_model
from nexus.cli.show import info_lines

PROMPT, CONTINUE = ">>> ", "... "
QUOTES = '"""'


def _go_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    return str(value)


class Repl:
    """One chat: reads lines until ``/bye`` or end of input."""

    def __init__(self, client: Client, ui: Consoles, session: Session) -> None:
        self.client, self.ui, self.session = client, ui, session
        self.editor = LineEditor(default_history_file())
        self.buffer: list[str] = []
        self.multiline: str | None = None  # "prompt" or "system" while inside """

    def loop(self) -> None:
        try:
            while self._step():
                pass
        finally:
            self.editor.save()

    def _step(self) -> bool:
        """Handle one input line; ``False`` to leave."""
        try:
            line = self.editor.read(CONTINUE if self.multiline or self.buffer else PROMPT)
        except EOFError:
            self.ui.line()
            return False
        except KeyboardInterrupt:
            self.ui.line("\n(Ctrl + d or /bye leaves the chat)")
            self.buffer.clear()
            self.multiline = None
            return True
        try:
            return self._handle(line)
        except KeyboardInterrupt:  # Ctrl-C during a command: back to the prompt
            self.ui.line()
            self.buffer.clear()
            self.multiline = None
            return True

    def _handle(self, line: str) -> bool:
        if self.multiline:
            self._continue_multiline(line)
        elif line.startswith(QUOTES):
            rest = line[len(QUOTES) :]
            if len(rest) >= len(QUOTES) and rest.endswith(QUOTES):
                self.buffer.append(rest[: -len(QUOTES)])
            else:
                self.buffer.append(rest + "\n")
                self.multiline = "prompt"
        elif line.startswith("/"):
            return self._command(line)
        else:
            self.buffer.append(line)
        if self.buffer and not self.multiline:
            text = "".join(self.buffer)
            self.buffer.clear()
            if text:
                self._send(text)
        return True

    def _continue_multiline(self, line: str) -> None:
        if not line.endswith(QUOTES):
            self.buffer.append(line + "\n")
            return
        self.buffer.append(line[: -len(QUOTES)])
        if self.multiline == "system":
            self._set_system("".join(self.buffer))
            self.buffer.clear()
        self.multiline = None

    # --- sending ---------------------------------------------------------------------------

    def _send(self, text: str) -> None:
        message: dict[str, Any] = {"role": "user", "content": text}
        if self.session.multimodal:
            from nexus.cli.attachments import attach_images

            try:
                message["content"], images = attach_images(text, self.ui)
            except CLIError as exc:
                self.ui.error(exc.message)
                return
            if images:
                message["images"] = images
        self.session.messages.append(message)
        try:
            reply = chat_turn(self.client, self.ui, self.session)
        except NotConnected:
            raise
        except CLIError as exc:
            self.session.messages.pop()
            self.ui.error(exc.message)
            return
        if reply is None:  # stopped with Ctrl-C: forget the unanswered message
            self.session.messages.pop()
        else:
            self.session.messages.append(reply)

    # --- slash commands --------------------------------------------------------------------

    def _command(self, line: str) -> bool:
        words = line.split()
        name, args = words[0], words[1:]
        if name in ("/bye", "/exit"):
            return False
        if name in ("/?", "/help"):
            self._help(args)
        elif name == "/set":
            self._set(args, line)
        elif name == "/show":
            self._show(args)
        elif name == "/clear":
            self._clear()
        elif name == "/load":
            self._load(args)
        elif name == "/save":
            self._save(args)
        elif name == "/list":
            from nexus.cli.models import list_models

            list_models(args[0] if args else None, as_json=False)
        elif self.session.multimodal and Path(name).is_file():
            self._send(line)  # a message that starts with an image path
        else:
            self.ui.line(f"Unknown command '{name}' (/? lists the commands)")
        return True

    def _help(self, args: list[str]) -> None:
        topic = args[0].lstrip("/") if args else ""
        if topic == "set":
            self.ui.note(repl_help.SET)
        elif topic == "show":
            self.ui.note(repl_help.SHOW)
        elif topic in ("shortcut", "shortcuts"):
            self.ui.note(repl_help.SHORTCUTS)
        else:
            extra = repl_help.IMAGES if self.session.multimodal else ""
            self.ui.note(repl_help.COMMANDS + extra)

    def _set(self, args: list[str], line: str) -> None:
        session, ui = self.session, self.ui
        if not args:
            ui.note(repl_help.SET)
            return
        what, rest = args[0], args[1:]
        if what in ("history", "nohistory"):
            self.editor.set_history(what == "history")
        elif what in ("wordwrap", "nowordwrap"):
            session.word_wrap = what == "wordwrap"
            ui.line(f"Word wrap {'on' if session.word_wrap else 'off'}.")
        elif what in ("verbose", "quiet"):
            session.verbose = what == "verbose"
            ui.line(f"Timing statistics {'on' if session.verbose else 'off'}.")
        elif what == "format":
            if rest[:1] != ["json"]:
                ui.line("Only JSON is available: /set format json")
            else:
                session.format = "json"
                ui.line("JSON answers on.")
        elif what == "noformat":
            session.format = ""
            ui.line("JSON answers off.")
        elif what in ("think", "nothink"):
            self._set_think(what == "think", rest[0] if rest else None)
        elif what == "parameter":
            self._set_parameter(rest)
        elif what == "system":
            self._start_system(line)
        else:
            ui.line(f"Unknown command '/set {what}' (/? set lists them)")

    def _set_think(self, on: bool, level: str | None) -> None:
        self.session.think = (level or True) if on else False
        self.session.think_set = True
        try:
            capabilities = self.client.show(self.session.model).get("capabilities") or []
        except CLIError:
            capabilities = ["thinking"]
        if "thinking" not in capabilities:
            self.ui.note(f"Warning: {self.session.model} is not a thinking model")
        if on and level:
            self.ui.line(f"Set 'think' mode to '{level}'.")
        else:
            self.ui.line(f"Set '{'think' if on else 'nothink'}' mode.")

    def _set_parameter(self, rest: list[str]) -> None:
        if len(rest) < 2:
            self.ui.note(repl_help.PARAMETERS)
            return
        from nexus.errors import NexusError
        from nexus.options import validate_parameters

        name, values = rest[0], rest[1:]
        try:
            typed = validate_parameters({name: values})
        except NexusError as exc:
            self.ui.line(f"Cannot set {name}: {exc.message}")
            return
        if name in typed:
            self.session.options[name] = typed[name]
        self.ui.line(f"Set parameter '{name}' to '{', '.join(values)}'")

    def _start_system(self, line: str) -> None:
        text = line.split(None, 2)[2] if len(line.split(None, 2)) > 2 else ""
        if not text:
            self.ui.note(repl_help.SET)
            return
        if text.startswith(QUOTES):
            body = text[len(QUOTES) :]
            if len(body) >= len(QUOTES) and body.endswith(QUOTES):
                self._set_system(body[: -len(QUOTES)])
            else:
                self.buffer.append(body + "\n")
                self.multiline = "system"
            return
        self._set_system(text)

    def _set_system(self, text: str) -> None:
        session = self.session
        session.system = text
        message = {"role": "system", "content": text}
        if session.messages and session.messages[-1].get("role") == "system":
            session.messages[-1] = message
        else:
            session.messages.append(message)
        self.ui.line("System message set.")

    def _show(self, args: list[str]) -> None:
        if not args:
            self.ui.note(repl_help.SHOW)
            return
        what = args[0]
        if what not in ("info", "license", "modelfile", "parameters", "system", "template"):
            self.ui.line(f"Unknown command '/show {what}' (/? show lists them)")
            return
        info = self.client.show(self.session.model)
        ui = self.ui
        if what == "info":
            for text in info_lines(info):
                ui.note(text)
        elif what == "license":
            ui.line(str(info.get("license") or "This model has no license."))
        elif what == "modelfile":
            ui.line(str(info.get("modelfile") or ""))
        elif what == "parameters":
            self._show_parameters(str(info.get("parameters") or ""))
        elif what == "system":
            system = self.session.system or str(info.get("system") or "")
            ui.line(system + "\n" if system else "This model has no system message.")
        else:
            template = str(info.get("template") or "")
            ui.line(template or "This model has no prompt template.")

    def _show_parameters(self, model_params: str) -> None:
        ui = self.ui
        ui.line("Parameters from the model:")
        if model_params:
            for text in model_params.splitlines():
                ui.line(f"  {text}")
        else:
            ui.line("  (none)")
        ui.line()
        if self.session.options:
            ui.line("Parameters set in this session:")
            for name, value in self.session.options.items():
                ui.line(f"  {name:<30} {_go_value(value)}")
            ui.line()

    def _clear(self) -> None:
        system = self.session.system
        self.session.messages = [{"role": "system", "content": system}] if system else []
        self.ui.line("Conversation cleared.")

    def _load(self, args: list[str]) -> None:
        if len(args) != 1:
            self.ui.line("Usage: /load <model>")
            return
        before = self.session.copy()
        session = self.session
        session.model, session.messages, session.loaded_messages = args[0], [], []
        self.ui.line(f"Loading model '{session.model}'")
        try:
            session.apply_show(self.client.show(session.model))
            load_model(self.client, self.ui, session)
        except ServerError as exc:
            self.session = before
            if exc.not_found or "not found" in exc.message:
                self.ui.line(f"Model '{args[0]}' not found.")
            else:
                self.ui.error(exc.message)

    def _save(self, args: list[str]) -> None:
        if len(args) != 1:
            self.ui.line("Usage: /save <model>")
            return
        session = self.session
        request: dict[str, Any] = {"model": args[0], "from": session.parent_model or session.model}
        if session.system:
            request["system"] = session.system
        if session.options:
            request["parameters"] = dict(session.options)
        messages = session.loaded_messages + session.messages
        if messages:
            request["messages"] = messages
        try:
            for _ in self.client.create(request):
                pass
        except ServerError as exc:
            if "invalid model name" in exc.message:
                self.ui.line(f"Invalid model name: '{args[0]}'")
            else:
                self.ui.error(exc.message)
            return
        self.ui.line(f"Saved this session as '{args[0]}'.")
