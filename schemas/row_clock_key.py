"""The canonical text of a row's primary key in `<meta_db>.row_clocks`, computed identically by the
clock triggers (SQL, from NEW/OLD column values) and by Python (from a change event's wire `pk`).

Format: for each primary-key column, in key order, `<n>:<text>` where `<text>` is the column's
canonical text and `<n>` its length in characters; the parts are joined with `,`. Examples:
`2:42` (INT 42), `1:k,1:7` (("k", 7)), `4:00ff` (VARBINARY 0x00FF). The length prefix makes the
format unambiguous whatever the text holds, without any escaping.

Canonical text per type (`types` strings as the wire's `types` map names them):

| PK type                          | text                                                       |
|----------------------------------|------------------------------------------------------------|
| TINYINT..BIGINT (signed/unsigned)| decimal digits, `-` if negative                            |
| DECIMAL(p,s)                     | the exact string with `s` decimals (as the wire has it)    |
| CHAR, VARCHAR                    | the text itself (CHAR without its trailing spaces)         |
| BINARY, VARBINARY                | lowercase hex of the bytes (BINARY(n): all n bytes)        |
| DATE                             | `YYYY-MM-DD`                                               |
| DATETIME(fsp)                    | `YYYY-MM-DD HH:MM:SS[.f]` with exactly `fsp` digits        |
| zero date (`{"$zero_date": raw}`)| the raw text                                               |

Other PK types (TIMESTAMP, TIME, FLOAT, ENUM, ...) are not supported: `key_kind` raises
`UnsupportedKey`, and `cdcsync init` skips such tables with a warning.

The row_clocks table is keyed by `(db, tbl, pk_hash)`, `pk_hash = SHA-256(utf8 bytes of the key's
identity)` (`key_hash`; SQL `UNHEX(SHA2(identity, 256))`), since a key text may exceed InnoDB's
3072-byte index limit. The identity (`key_identity`, SQL `sql_key_identity`) is the key text with
each text column's value replaced by its fold in the column's collation (schemas/key_fold.py), so
that `'bob'` and `'BOB'` name one row where the server says they are one; the key text itself
(`row_clock_key`) is what `row_clocks.pk` shows. For keys without a folding text column the two
are the same text.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from schemas import key_fold
from schemas.identifiers import quote_name
from schemas.values import ZERO_DATE, is_zero_date, zero_date

_INTS = {"tinyint", "smallint", "mediumint", "int", "bigint"}
_TYPE = re.compile(r"^\s*([a-z]+)\s*(?:\(([^)]*)\))?", re.IGNORECASE)


class UnsupportedKey(ValueError):
    """A primary-key column type the canonical key does not cover."""


@functools.lru_cache(maxsize=1024)   # per value of every clocked change: parse each spelling once
def key_kind(sql_type: str) -> tuple[str, int]:
    """(kind, fsp) of a PK column type: kind is int, decimal, text, binary, date or datetime.
    Accepts the wire's type names (`int unsigned`, `datetime(3)`) and information_schema's
    COLUMN_TYPE (`int(11) unsigned`)."""
    match = _TYPE.match(sql_type)
    if not match:
        raise UnsupportedKey(f"unsupported primary-key type {sql_type!r}")
    base, arg = match.group(1).lower(), match.group(2)
    if base in _INTS:
        return "int", 0
    if base in ("decimal", "numeric"):
        return "decimal", 0
    if base in ("char", "varchar"):
        return "text", 0
    if base in ("binary", "varbinary"):
        return "binary", 0
    if base == "date":
        return "date", 0
    if base == "datetime":
        return "datetime", int(arg) if arg else 0
    raise UnsupportedKey(f"unsupported primary-key type {sql_type!r}")


def _text(value: Any, sql_type: str) -> str:
    kind, fsp = key_kind(sql_type)
    if value is None:
        raise ValueError("a primary-key value is never NULL")
    if is_zero_date(value):
        return value[ZERO_DATE]
    if kind == "int":
        return str(int(value))
    if kind == "binary":
        return base64.b64decode(value).hex()
    if kind == "datetime":
        # The wire has 6 fraction digits whenever fsp > 0; the server's text has fsp digits.
        return value[:20 + fsp] if fsp else value[:19]
    return str(value)


def row_clock_key(pk: Mapping[str, Any], types: Mapping[str, str]) -> str:
    """The canonical key text of a change event's `pk` (wire values, in key order) and `types`."""
    parts = []
    for column, value in pk.items():
        text = _text(value, types[column])
        parts.append(f"{len(text)}:{text}")
    return ",".join(parts)


def key_identity(pk: Mapping[str, Any], types: Mapping[str, str], folded: Mapping[str, str] | None) -> str:
    """The key text with the folded text columns' folds (`key_fold.fold_pk`) in place of their
    values: the text `pk_hash` is computed from."""
    if not folded:
        return row_clock_key(pk, types)
    parts = []
    for column, value in pk.items():
        text = folded[column] if column in folded else _text(value, types[column])
        parts.append(f"{len(text)}:{text}")
    return ",".join(parts)


def row_identity(pk: Mapping[str, Any], types: Mapping[str, str], fold: Mapping[str, str] | None) -> str:
    """`key_identity` of a key whose text columns that fold are `fold` (column -> collation; the
    collations' weights loaded, schemas/key_fold.py)."""
    return key_identity(pk, types, key_fold.fold_pk(pk, fold) if fold else None)


def key_hash(key: str) -> bytes:
    """The 32-byte `pk_hash` of a key text (what the triggers compute with `UNHEX(SHA2(key, 256))`)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def _sql_text(ref: str, sql_type: str) -> str:
    kind, _ = key_kind(sql_type)
    if kind == "binary":
        return f"LOWER(HEX({ref}))"
    # CAST prints integers, DECIMAL with its scale, DATE and DATETIME with fsp digits (zero dates
    # as stored); CHAR values arrive without trailing spaces.
    return f"CONVERT(CAST({ref} AS CHAR) USING utf8mb4)" if kind != "text" else f"CONVERT({ref} USING utf8mb4)"


def sql_key_expression(columns: Sequence[tuple[str, str]], row: str) -> str:
    """The SQL expression (utf8mb4 text) of the canonical key of `row` (`NEW` or `OLD`) in a trigger;
    `columns` are the PK's (name, COLUMN_TYPE) in key order."""
    parts = []
    for name, sql_type in columns:
        text = _sql_text(f"{row}.{quote_name(name)}", sql_type)
        parts.append(f"CHAR_LENGTH({text}), ':', {text}")
    return "CONCAT(" + ", ',', ".join(parts) + ")"


def sql_key_identity(columns: Sequence[tuple[str, str, str | None]], row: str) -> str:
    """The SQL expression of the identity of `row`'s key (see `key_identity`); `columns` are the
    PK's (name, COLUMN_TYPE, COLLATION_NAME) in key order."""
    parts = []
    for name, sql_type, collation in columns:
        ref = f"{row}.{quote_name(name)}"
        kind, _ = key_kind(sql_type)
        text = key_fold.sql_fold(ref, collation) if kind == "text" else _sql_text(ref, sql_type)
        parts.append(f"CHAR_LENGTH({text}), ':', {text}")
    return "CONCAT(" + ", ',', ".join(parts) + ")"


def split_key(key: str) -> list[str]:
    """The column texts of a canonical key text, in key order (the inverse of the joining above).
    Raises ValueError on text that is not a canonical key."""
    parts: list[str] = []
    i = 0
    while True:
        colon = key.find(":", i)
        if colon <= i or not key[i:colon].isdigit():
            raise ValueError(f"not a canonical key: {key!r}")
        end = colon + 1 + int(key[i:colon])
        if end > len(key):
            raise ValueError(f"not a canonical key: {key!r}")
        parts.append(key[colon + 1:end])
        if end == len(key):
            return parts
        if key[end] != ",":
            raise ValueError(f"not a canonical key: {key!r}")
        i = end + 1


def _wire(text: str, sql_type: str) -> Any:
    """The wire value of one column's canonical key text (the inverse of `_text`)."""
    kind, fsp = key_kind(sql_type)
    if kind == "int":
        return int(text)
    if kind == "binary":
        return base64.b64encode(bytes.fromhex(text)).decode("ascii")
    if kind in ("date", "datetime"):
        try:   # a zero or invalid date travels as its raw text (schemas/values.py)
            datetime.date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
        except ValueError:
            return zero_date(text)
        return text + "0" * (6 - fsp) if kind == "datetime" and fsp else text
    return text


def key_values(key: str, types: Mapping[str, str], columns: Sequence[str]) -> dict[str, Any]:
    """The wire `pk` (column -> value, in key order) whose canonical key text is `key`: what a
    change event of that row carries. Raises ValueError when `key` does not fit `columns` (a key
    written before the table's key changed)."""
    texts = split_key(key)
    if len(texts) != len(columns):
        raise ValueError(f"key {key!r} has {len(texts)} part(s), the table's key has {len(columns)}")
    pk = {c: _wire(t, types[c]) for c, t in zip(columns, texts)}
    if row_clock_key(pk, types) != key:
        raise ValueError(f"key {key!r} is not a canonical key of columns {list(columns)}")
    return pk
