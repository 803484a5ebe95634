"""The docs site builds with `mkdocs build --strict`, generated pages included, so CI fails when a
link, an anchor or a page rots (mkdocs.yml turns every link check and pages missing from the nav
into warnings, and strict makes warnings fatal)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    # The module, not a `mkdocs` on PATH: the test extra installs it into this interpreter.
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"`mkdocs build --strict` failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return out


def _page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text() if path else (site / "index.html").read_text()


def test_the_site_builds_strict_with_the_readme_as_home_page(site: Path) -> None:
    home = _page(site, "")
    assert "make demo" in home and "Your own schema" in home
    assert 'href="reference/configuration/"' in home     # README's docs/ links point inside the site


def test_generated_pages_hold_the_generated_content(site: Path) -> None:
    from schemas.json_schema import message_schemas

    cli = _page(site, "reference/cli")
    for command in ("cdcsync producer", "cdcsync dlq replay", "cdcsync conflicts resolve", "cdcsync sandbox up"):
        assert f"<code>{command}</code>" in cli, f"the CLI reference lacks {command!r}"
    # help text that looks like HTML or holds a table's `|` shows as written, not swallowed or split
    assert "(any &lt;n&gt;&lt;s|m|h|d&gt;)" in cli
    assert "Entries to replay: &lt;partition&gt;:&lt;offset&gt;" in cli
    config = _page(site, "reference/configuration")
    assert "regions.&lt;name&gt;.sink.max_consecutive_dead_letters" in config
    schemas = _page(site, "reference/json-schemas")
    for name, schema in message_schemas().items():
        assert schema["$id"] in schemas, f"the JSON Schemas page lacks {name}"
    assert "&lt;!-- generated:" not in cli + config + schemas and "<!-- generated:" not in cli + config + schemas
