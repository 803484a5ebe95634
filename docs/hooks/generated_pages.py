"""MkDocs hook: the pages generated from the code, rendered at every build so they never go stale.

- `index.md` is the repository's README.md, its `docs/...` links made relative to the site;
- a page line `<!-- generated: NAME -->` is replaced by the generated Markdown NAME:
  `config-reference` (schemas/config_reference.py), `cli-reference` (cdcsync/cli_reference.py),
  `json-schemas` (schemas/json_schema.py).

Used by mkdocs.yml (`hooks:`); `make docs` and tests/unit/test_docs_site.py build with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def _config_reference() -> str:
    from schemas.config_reference import reference_markdown

    return reference_markdown()


def _cli_reference() -> str:
    from cdcsync.cli_reference import cli_reference_markdown

    return cli_reference_markdown()


def _json_schemas() -> str:
    from schemas.json_schema import message_schemas

    out = []
    for name, schema in message_schemas().items():
        out += [f"## `{name}`", "", f"`{schema['$id']}`", "",
                "```json", json.dumps(schema, indent=2, sort_keys=True), "```", ""]
    return "\n".join(out)


GENERATORS: dict[str, Callable[[], str]] = {
    "config-reference": _config_reference,
    "cli-reference": _cli_reference,
    "json-schemas": _json_schemas,
}


def expand(markdown: str, where: str = "page") -> str:
    """Replace every `<!-- generated: NAME -->` line; an unknown NAME is an error, not a blank."""
    def generate(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{where}: unknown generated block {name!r} (known: {sorted(GENERATORS)})")
        return GENERATORS[name]()
    return PLACEHOLDER.sub(generate, markdown)


def readme_as_index(readme: str) -> str:
    """README.md as the site's home page: its links into docs/ become links inside the site."""
    return re.sub(r"\]\(docs/", "](", readme)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "index.md", content=readme_as_index((ROOT / "README.md").read_text())))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    try:
        return expand(markdown, page.file.src_uri)
    except ValueError as err:
        from mkdocs.exceptions import PluginError

        raise PluginError(str(err)) from None


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    server.watch(str(ROOT / "README.md"))
    return server
