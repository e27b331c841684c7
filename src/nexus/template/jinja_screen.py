"""What a Jinja chat template may contain to be rendered in the server process.

A GGUF's template is anyone's upload. The sandbox (``jinja``) limits what a template can reach
and call, the render's deadline and output cap limit how long and how much it may run; this
screen, read from the template's syntax before it is ever compiled, rules out the rest:
macros, blocks, includes and recursive loops (unbounded recursion, other templates), and a
value built from two values the template itself assigned (``{% set s = s ~ s %}`` doubles in
every pass of a loop: a gigabyte in thirty steps). A template outside these bounds is still
rendered, by the engine, in its own runner process.
"""

from __future__ import annotations

from jinja2 import nodes

from nexus.template.errors import TemplateError

#: Statements that have no place in a chat template rendered here.
_REFUSED = (
    nodes.Macro,
    nodes.CallBlock,
    nodes.FilterBlock,
    nodes.With,
    nodes.AssignBlock,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Extends,
    nodes.Block,
    nodes.ExprStmt,
    nodes.OverlayScope,
    nodes.EvalContextModifier,
    nodes.Scope,
)


def _target_names(target: nodes.Node) -> set[str]:
    if isinstance(target, nodes.Name):
        return {target.name}
    if isinstance(target, nodes.NSRef):
        return {target.name}
    if isinstance(target, nodes.Tuple):
        return {name for item in target.items for name in _target_names(item)}
    return set()


def _loads(node: nodes.Node, names: set[str]) -> int:
    """How many times ``node`` reads one of ``names``."""
    found = 1 if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in names else 0
    return found + sum(_loads(child, names) for child in node.iter_child_nodes())


def _assigned(tree: nodes.Template) -> set[str]:
    """Names the template assigns, and loop variables taken from what it assigned."""
    names: set[str] = set()
    for node in tree.find_all(nodes.Assign):
        names |= _target_names(node.target)
    changed = True
    while changed:
        changed = False
        for loop in tree.find_all(nodes.For):
            if _loads(loop.iter, names) and not _target_names(loop.target) <= names:
                names |= _target_names(loop.target)
                changed = True
    return names


def screen(tree: nodes.Template) -> None:
    """``TemplateError`` naming the first construct a template rendered here may not use."""
    for node in tree.find_all(_REFUSED):
        raise TemplateError(f"{type(node).__name__.lower()} is not rendered here")
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise TemplateError("a recursive loop is not rendered here")
    assigned = _assigned(tree)
    for node in tree.find_all(nodes.Assign):
        if _loads(node.node, assigned) > 1:
            raise TemplateError(
                f"line {node.lineno}: a value built from two assigned values is not rendered here"
            )
