"""The CLI reference page, generated from the Typer app (the docs site renders it at build time).

Walks the command tree that `cdcsync --help` shows and renders each command's usage, help text and
parameters as Markdown, from the same parameter objects the CLI parses with, so the page cannot
drift from the code. Typer vendors its own copy of click, so this reads only the generic parts of
the command objects (`commands`, `params`, `get_help_record`), not click's classes.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["cli_reference_markdown"]

_CODE_SPAN = re.compile(r"(`[^`]*`)")


def _escape(text: str, pipes: bool = False) -> str:
    """Markdown-safe prose: `<partition>` outside code spans would be taken for an HTML tag, and in
    a table cell a bare `|` for a column break (inside a code span it is kept as it is)."""
    def prose(part: str) -> str:
        part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return part.replace("|", "\\|") if pipes else part
    return "".join(part if part.startswith("`") else prose(part) for part in _CODE_SPAN.split(text))


def _cell(text: str) -> str:
    return _escape(" ".join(text.split()), pipes=True)


def _code_cell(text: str) -> str:
    return "`" + text + "`"       # Python-Markdown's tables keep a `|` inside a code span in its cell


def _help_paragraphs(help_text: str | None) -> list[str]:
    """A docstring's paragraphs, each joined into one line (click's `\\b` no-rewrap marker dropped)."""
    if not help_text:
        return []
    paragraphs = [p.replace("\b", "").strip() for p in re.split(r"\n\s*\n", help_text.strip())]
    return [_escape(" ".join(p.split())) for p in paragraphs if p]


def _context(command: Any, name: str, parent: Any | None) -> Any:
    return command.context_class(command, info_name=name, parent=parent)


def _render(command: Any, path: list[str], parent_ctx: Any | None, out: list[str]) -> None:
    ctx = _context(command, path[-1], parent_ctx)
    level = "##" if len(path) <= 2 else "###"     # the root and its commands h2, sub-commands h3
    out += [f"{level} `{' '.join(path)}`", ""]
    out += ["```", " ".join([*path, *command.collect_usage_pieces(ctx)]), "```", ""]
    for paragraph in _help_paragraphs(command.help):
        out += [paragraph, ""]
    records = []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is None:          # an argument: click gives no record, so name it from its metavar
            record = (param.make_metavar(ctx) if hasattr(param, "make_metavar") else param.name,
                      getattr(param, "help", "") or "")
        records.append(record)
    if records:
        out += ["| parameter | meaning |", "|---|---|"]
        out += [f"| {_code_cell(names)} | {_cell(text)} |" for names, text in records]
        out.append("")
    subcommands = getattr(command, "commands", {})
    for name, sub in subcommands.items():
        if getattr(sub, "hidden", False):
            continue
        _render(sub, [*path, name], ctx, out)


def cli_reference_markdown() -> str:
    """Every `cdcsync` command and sub-command: usage, help and parameters, in the CLI's order."""
    import typer

    from cdcsync.cli import app

    root = typer.main.get_command(app)
    out: list[str] = []
    _render(root, ["cdcsync"], None, out)
    return "\n".join(out).rstrip() + "\n"
