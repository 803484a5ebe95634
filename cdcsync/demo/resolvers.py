"""The demo's `custom` conflict resolver (`custom_resolver = "cdcsync.demo.resolvers:most_on_hand"`).

Called on two concurrent versions of a `shop.inventory` row (docs/conflicts.md, `custom`); must be
deterministic and symmetric, so every region folds the same heads to the same row.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.row_version import RowVersion


def most_on_hand(a: RowVersion, b: RowVersion) -> dict[str, Any] | None:
    """Keep the version that counts more stock on hand (ties: the greater row text); a write beats a
    concurrent delete, so stock is never dropped by a race."""
    if a.values is None or b.values is None:
        alive = a.values if a.values is not None else b.values
        return None if alive is None else dict(alive)
    return dict(max(a.values, b.values, key=lambda v: (int(v.get("on_hand") or 0),
                                                       orjson.dumps(v, option=orjson.OPT_SORT_KEYS, default=str))))
