"""The docs stay true: the README is a short front page whose commands the real CLI and Makefile
accept, and the reference tables of the docs site are generated from the code, never copied."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.consistency import CommandLineError, parse_cli
from schemas.config_reference import BEGIN, reference_markdown

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _hook() -> ModuleType:
    """docs/hooks/generated_pages.py, the mkdocs hook (not a package: loaded by path, as mkdocs does)."""
    spec = importlib.util.spec_from_file_location("generated_pages", DOCS / "hooks" / "generated_pages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _invocations(block: str, program: str) -> list[list[str]]:
    """Every simple command of a shell block that runs `program`, as words (comments dropped; a
    command ends at a newline outside quotes, `;`, `&`, `&&` or `|`)."""
    found: list[list[str]] = []
    pending = ""
    for line in block.replace("\\\n", " ").splitlines():
        pending += line
        try:
            words = _words(pending)
        except ValueError:          # a quote still open: the command goes on on the next line
            pending += "\n"
            continue
        pending = ""
        current: list[str] | None = None
        for word in words:
            if set(word) <= set(";&|()"):
                current = None
            elif current is None and word == program:
                current = []
                found.append(current)
            elif current is not None:
                current.append(word)
    return found


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text()[:600]
    assert "make demo" in head and "make test" in head


def test_readme_is_a_front_page() -> None:
    lines = README.read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move reference material into docs/ (the front page keeps ~250)"


def test_readme_commands_are_accepted_by_the_real_cli_and_makefile() -> None:
    blocks = _shell_blocks(README.read_text())
    commands = [argv for block in blocks for argv in _invocations(block, "cdcsync")]
    assert len(commands) >= 6, commands          # the own-schema path: sandbox, init, run, status, verify, down
    for argv in commands:
        try:
            parse_cli(argv)
        except CommandLineError as err:
            pytest.fail(f"README runs a command the CLI refuses: {err}")
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    for argv in (argv for block in blocks for argv in _invocations(block, "make")):
        assert argv and argv[0] in targets, f"README runs `make {' '.join(argv)}`, but the Makefile has no such target"


def test_the_configuration_page_renders_the_reference_generated_from_the_models() -> None:
    page = (DOCS / "reference" / "configuration.md").read_text()
    assert "<!-- generated: config-reference -->" in page
    assert reference_markdown() in _hook().expand(page)


def test_no_page_carries_a_hand_copied_reference_that_would_go_stale() -> None:
    for path in [README, *DOCS.rglob("*.md")]:
        assert BEGIN not in path.read_text(), (
            f"{path.relative_to(ROOT)} embeds a copy of the configuration reference; "
            "use the line `<!-- generated: config-reference -->` instead")


def test_an_unknown_generated_block_fails_the_build_naming_it() -> None:
    with pytest.raises(ValueError, match="reference/x.md: unknown generated block 'cli-refrence'"):
        _hook().expand("<!-- generated: cli-refrence -->\n", "reference/x.md")


def test_the_cli_reference_has_every_command_and_option() -> None:
    import typer

    from cdcsync.cli import app
    from cdcsync.cli_reference import cli_reference_markdown

    text = cli_reference_markdown()

    def walk(command: object, path: list[str]) -> None:
        assert f"`{' '.join(path)}`\n" in text, f"the CLI reference lacks {' '.join(path)!r}"
        for param in getattr(command, "params", []):
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in text, f"the CLI reference lacks {' '.join(path)} {opt}"
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), ["cdcsync"])


def test_readme_links_into_docs_name_existing_pages() -> None:
    for target in re.findall(r"\]\((docs/[^)#]+)", README.read_text()):
        assert (ROOT / target).is_file(), f"README links to {target}, which does not exist"


_REPO_PATH = re.compile(r"`((?:cdcsync|producers|consumers|schemas|common|deploy|tests|bench|docs)/[\w./-]*)`")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_repository_paths_named_in_the_docs_exist() -> None:
    """A module moved or renamed leaves no stale path behind in README or docs/ (code spans such as
    `consumers/cache_reader.py`, or `deploy/consistency.parse_cli` for a function in a module)."""
    stale = []
    for page in _pages():
        for path in _REPO_PATH.findall(page.read_text()):
            path = path.rstrip("/.")
            if not (ROOT / path).exists() and not (ROOT / re.sub(r"\.\w+$", ".py", path)).exists():
                stale.append(f"{page.relative_to(ROOT)}: {path}")
    assert not stale, "paths that do not exist (moved? update the page):\n" + "\n".join(stale)


def test_python_imports_in_the_docs_resolve() -> None:
    """The README's `from consumers.cache_reader import CacheReader` (and every import in a docs
    page's Python block) names a module and attribute that exist."""
    import importlib

    for page in _pages():
        for block in re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.MULTILINE | re.DOTALL):
            for module, names in re.findall(r"^from ([\w.]+) import ([\w, ]+)$", block, flags=re.MULTILINE):
                imported = importlib.import_module(module)
                for name in (n.strip() for n in names.split(",")):
                    assert hasattr(imported, name), f"{page.relative_to(ROOT)}: {module} has no {name}"
