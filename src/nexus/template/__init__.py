"""Go ``text/template`` for model prompt formats, and Ollama's prompt building on top.

>>> parse("{{ range .Messages }}{{ .Role }}: {{ .Content }}\\n{{ end }}").render(
...     {"Messages": [{"Role": "user", "Content": "hi"}]})
'user: hi\\n'
"""

from nexus.template.core import DEFAULT_TEMPLATE, Template, parse
from nexus.template.errors import TemplateError
from nexus.template.prompt import render_generate, render_prompt, tag_images

__all__ = [
    "DEFAULT_TEMPLATE",
    "Template",
    "TemplateError",
    "parse",
    "render_generate",
    "render_prompt",
    "tag_images",
]
