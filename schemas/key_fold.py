"""How primary-key text compares: one key value folded the way its column's collation compares it.

MariaDB compares a CHAR/VARCHAR key by its collation: in the default `utf8mb4_unicode_ci`, `'bob'`,
`'BOB'`, `'Bob '` and `'bób'` are one row. Every place that names a row by its key (row clocks, the
sink's lookups, Kafka message keys, cache and Bloom keys, verify) must name it the same way, so a
text key column's value is replaced by its *fold*: a text equal for two values exactly when the
server's `=` says they are equal.

Three kinds of supported collation (`MODES`; anything else is refused, `UnsupportedCollation`):

| mode      | collations                                  | fold (Python)                 | fold (SQL)                            |
|-----------|---------------------------------------------|-------------------------------|---------------------------------------|
| `exact`   | `*_nopad_bin`                               | the value                     | `CONVERT(x USING utf8mb4)`            |
| `trim`    | `*_bin` (PAD SPACE)                         | without trailing U+0020       | `TRIM(TRAILING ' ' FROM ...)`         |
| `weights` | `*_general_ci`, `*_unicode_ci`, ... (below) | hex of the collation weights, trailing space weights cut | `TRIM(TRAILING '<space>' FROM HEX(WEIGHT_STRING(x)))` |

`weights`: the server's own weight of every character (`WEIGHT_STRING`), read once per process
from the server (`load`, one query per collation, ~0.2 s), concatenated per character, then the
trailing units equal to the weight of a space are cut (PAD SPACE compares as if the shorter value
were padded with spaces). SQL and Python therefore use the same weights by construction; what
remains to prove is that the server compares strings by the concatenation of their characters'
weights (no contractions), which `tests/integration/test_key_fold.py` checks over a corpus.
Characters outside the Basic Multilingual Plane all weigh U+FFFD in `utf8mb4_general_ci` and
`utf8mb4_unicode_ci` (checked at load), so every character a supported column can hold folds.
Not supported (refused by `cdcsync init`, `config check` and the producer): `*_unicode_520_ci`
(each supplementary character has its own weight, which this table does not hold) and the
`uca1400` collations (they contract sequences: `L·` weighs as `Ŀ`, `и` + U+0306 as `й`, so their
weights are not per character), and any other collation not listed in `MODES`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# collation -> (mode, hex weight of U+0020 for `weights`: the unit PAD SPACE cuts, pinned so that
# the SQL of the triggers is pure; `load` checks it against the server)
MODES: dict[str, tuple[str, str]] = {
    **{f"{cs}_nopad_bin": ("exact", "") for cs in ("utf8mb4", "utf8mb3", "latin1", "ascii")},
    **{f"{cs}_bin": ("trim", "") for cs in ("utf8mb4", "utf8mb3", "latin1", "ascii")},
    **{f"{cs}_general_ci": ("weights", "0020") for cs in ("utf8mb4", "utf8mb3")},
    **{f"{cs}_unicode_ci": ("weights", "0209") for cs in ("utf8mb4", "utf8mb3")},
    "latin1_swedish_ci": ("weights", "20"),
    "latin1_general_ci": ("weights", "20"),
    "latin1_general_cs": ("weights", "20"),
    "ascii_general_ci": ("weights", "20"),
}
# `weights` collations in which every supplementary character weighs the same (U+FFFD)
_ONE_SUPPLEMENTARY = {"utf8mb4_general_ci", "utf8mb4_unicode_ci"}


class UnsupportedCollation(ValueError):
    """A text primary-key column whose collation the fold does not cover."""


class UnfoldableKey(ValueError):
    """A key value with a character the fold cannot weigh (outside the collation's table)."""


class Cursor(Protocol):
    def execute(self, query: str, args: Any = ...) -> Any: ...
    def fetchall(self) -> Any: ...


def mode(collation: str | None) -> str:
    """`exact`, `trim` or `weights`; None (a column without collation: not text) is `exact`."""
    if collation is None:
        return "exact"
    found = MODES.get(collation)
    if found is None:
        raise UnsupportedCollation(
            f"collation {collation} is not supported for a primary-key column (supported: "
            f"{', '.join(sorted(MODES))}); change the column's COLLATE to one of them")
    return found[0]


def check(column: str, collation: str | None) -> None:
    """Raise UnsupportedCollation with one line naming `column` (`db.table.column`) and the fix."""
    if collation is not None and collation not in MODES:
        raise UnsupportedCollation(
            f"{column}: primary-key collation {collation} is not supported; ALTER the column to a supported "
            f"collation (utf8mb4_unicode_ci, utf8mb4_general_ci, utf8mb4_bin, ...: docs/clocks.md, "
            f"\"How keys compare\")")


def folds(collation: str | None) -> bool:
    """Whether two different values can be the same key in this collation (mode is not `exact`)."""
    return mode(collation) != "exact"


@dataclass(frozen=True, slots=True)
class Weights:
    """The server's weight of every character of one collation."""

    collation: str
    table: Mapping[str, bytes]          # character -> its WEIGHT_STRING
    supplementary: bytes | None         # the weight of every character above U+FFFF, None: refused
    space: bytes                        # the weight of U+0020: trailing units equal to it are cut

    def fold(self, text: str) -> str:
        table, parts = self.table, []
        for ch in text:
            weight = table.get(ch)
            if weight is None:
                weight = self.supplementary if ord(ch) > 0xFFFF else None
                if weight is None:
                    raise UnfoldableKey(f"character U+{ord(ch):04X} in key {text!r} cannot be compared "
                                        f"as collation {self.collation} compares it")
            parts.append(weight)
        folded = b"".join(parts)
        unit = len(self.space)
        while folded and folded[-unit:] == self.space:
            folded = folded[:-unit]
        return folded.hex().upper()


_LOADED: dict[str, Weights] = {}
_LOCK = threading.Lock()


def _numbers(limit: int) -> str:
    """A derived table `n` of 0..limit-1 (limit a power of 16), needing no privilege."""
    digits = " UNION ALL ".join(f"SELECT {i} d" for i in range(16))
    levels, width = [], 1
    while width < limit:
        levels.append(f"({digits}) h{len(levels)}")
        width *= 16
    value = " + ".join(f"h{i}.d * {16 ** i}" for i in range(len(levels)))
    return f"(SELECT {value} n FROM {' CROSS JOIN '.join(levels)}) AS nums"


def load(cur: Cursor, collation: str) -> Weights:
    """The weights of a `weights` collation, read from the server once per process."""
    found = _LOADED.get(collation)
    if found is not None:
        return found
    with _LOCK:
        found = _LOADED.get(collation)
        if found is not None:
            return found
        if mode(collation) != "weights":
            raise ValueError(f"collation {collation} has no weights to load")
        charset = collation.split("_", 1)[0]
        if charset in ("utf8mb4", "utf8mb3"):
            char = f"CONVERT(CHAR(n USING utf32) USING {charset})"
            numbers, where = _numbers(0x10000), "WHERE n NOT BETWEEN 55296 AND 57343"
        else:
            char = f"CHAR(n USING {charset})"
            numbers, where = _numbers(0x100 if charset == "latin1" else 0x80), ""
        cur.execute(f"SELECT CONVERT({char} USING utf8mb4), WEIGHT_STRING({char} COLLATE {collation}) "
                    f"FROM {numbers} {where}")
        table: dict[str, bytes] = {}
        for ch, weight in cur.fetchall():
            if ch is not None and weight is not None and len(ch) == 1:
                table[ch] = bytes(weight)
        space = table[" "]
        if space.hex().upper() != MODES[collation][1]:
            raise UnsupportedCollation(f"collation {collation}: the server weighs a space {space.hex().upper()}, "
                                       f"cdcsync expects {MODES[collation][1]}")
        if any(len(w) % len(space) for w in table.values()):
            raise UnsupportedCollation(f"collation {collation}: weights are not whole units of a space's weight")
        supplementary = None
        if collation in _ONE_SUPPLEMENTARY:
            cur.execute(f"SELECT WEIGHT_STRING(CONVERT(CHAR(n USING utf32) USING utf8mb4) COLLATE {collation}) "
                        f"FROM (SELECT 65536 n UNION ALL SELECT 128512 UNION ALL SELECT 1114111) s")
            weights = {bytes(w) for (w,) in cur.fetchall()}
            if len(weights) != 1:
                raise UnsupportedCollation(f"collation {collation}: supplementary characters weigh differently")
            supplementary = weights.pop()
        found = _LOADED[collation] = Weights(collation, table, supplementary, space)
        return found


def loaded(collation: str) -> bool:
    """Whether `fold` can fold values of this collation now (no weights to load, or loaded)."""
    return mode(collation) != "weights" or collation in _LOADED


def ensure(cur: Cursor, collations: Mapping[str, str | None]) -> None:
    """Load the weights of every `weights` collation among `collations` (column -> collation)."""
    for collation in set(collations.values()):
        if collation is not None and mode(collation) == "weights":
            load(cur, collation)


def folding(collations: Mapping[str, str | None], table: str) -> dict[str, str]:
    """The columns among `collations` (text key column -> collation) whose collation folds; raises
    UnsupportedCollation (one line naming `table`.column and the fix) for an unsupported one."""
    out = {}
    for column, collation in collations.items():
        check(f"{table}.{column}", collation)
        if collation is not None and folds(collation):
            out[column] = collation
    return out


def fold(value: str, collation: str | None) -> str:
    """The fold of one text key value (see the table above). A `weights` collation must have been
    loaded in this process (`load`/`ensure`) first."""
    how = mode(collation)
    if how == "exact":
        return value
    if how == "trim":
        return value.rstrip(" ")
    weights = _LOADED.get(collation)  # type: ignore[arg-type]
    if weights is None:
        raise RuntimeError(f"collation {collation}: weights not loaded (key_fold.ensure first)")
    return weights.fold(value)


def fold_pk(pk: Mapping[str, Any], collations: Mapping[str, str | None]) -> dict[str, str] | None:
    """Column -> fold of the key's text columns whose collation folds, None when none does.
    `collations` holds the text key columns only (column -> collation)."""
    out = {c: fold(pk[c], collation) for c, collation in collations.items()
           if collation is not None and MODES.get(collation, ("",))[0] != "exact" and pk.get(c) is not None}
    return out or None


def key_values(pk: Mapping[str, Any], folded: Mapping[str, str] | None) -> list[Any]:
    """The key's values in key order with folded text in place of the text: what names the row in
    Kafka message keys, cache keys and Bloom keys."""
    if not folded:
        return list(pk.values())
    return [folded.get(c, v) for c, v in pk.items()]


def sql_fold(ref: str, collation: str | None) -> str:
    """The SQL of a text column's fold (utf8mb4 text), for triggers and queries."""
    how = mode(collation)
    text = f"CONVERT({ref} USING utf8mb4)"
    if how == "exact":
        return text
    if how == "trim":
        return f"TRIM(TRAILING ' ' FROM {text})"
    space = MODES[collation][1]  # type: ignore[index]
    return f"CONVERT(TRIM(TRAILING '{space}' FROM HEX(WEIGHT_STRING({ref}))) USING utf8mb4)"
