"""The docs stay true: README's configuration reference is the one generated from the models."""

from __future__ import annotations

from pathlib import Path

from schemas.config_reference import BEGIN, END, reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_reference_is_current() -> None:
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == reference_markdown(), (
        "README's configuration reference is stale: run `python -m schemas.config_reference README.md`")


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text()[:600]
    assert "make demo" in head and "make test" in head
