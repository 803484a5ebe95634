"""Custom conflict resolvers the tests name in configs (`custom_resolver = "module:function"`)."""

from __future__ import annotations

from typing import Any

from schemas.row_version import RowVersion


def greatest_value(a: RowVersion, b: RowVersion) -> dict[str, Any] | None:
    """The row whose `v` is greatest; a write beats a concurrent delete. Deterministic and symmetric."""
    if a.values is None or b.values is None:
        alive = a.values if a.values is not None else b.values
        return None if alive is None else dict(alive)
    return dict(max(a.values, b.values, key=lambda values: str(values.get("v"))))
