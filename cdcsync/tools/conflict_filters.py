"""What an operator types to `cdcsync conflicts` -> what `consumers.db.conflict_log` filters on.

Pure functions (no I/O): times (`--since`/`--until`), bucket sizes (`--bucket`), and row keys
(`--key`), the last turned into the row's canonical key text (schemas/row_clock_key.py) from the
key columns' wire types, which the caller reads from the region's information_schema.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from schemas.row_clock_key import UnsupportedKey, key_kind, row_identity

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


class FilterError(ValueError):
    """Operator input that cannot be turned into a filter; the message names the problem."""


def parse_duration_s(text: str) -> int:
    """`30s`, `10m`, `2h`, `1d` -> seconds (a positive whole number of one unit)."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise FilterError(f"{text!r}: expected a positive duration like 30s, 10m, 2h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_bucket_s(text: str) -> int:
    """`--bucket`: a duration (`1m`, `1h`, `1d`, any `<n><s|m|h|d>`) -> seconds."""
    return parse_duration_s(text)


def parse_time_us(text: str, now_us: int) -> int:
    """`--since`/`--until` -> µs since the epoch: `now`, a duration ago (`10m`, `2h`), or an ISO time
    (`2026-11-29T12:00:00`, `2026-11-29 12:00`, with or without offset; without one it is UTC)."""
    if text.strip().lower() == "now":
        return now_us
    if _DURATION.match(text):
        return now_us - parse_duration_s(text) * 1_000_000
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{text!r}: expected an ISO time (2026-11-29T12:00:00, UTC unless an offset is given) "
                          "or a duration ago like 10m, 2h, 1d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _split_assignments(text: str) -> list[tuple[str, str]]:
    """`a=1,b=x` -> [(a, 1), (b, x)]; a piece without `=` continues the previous value (`k=a,b` is `a,b`)."""
    pairs: list[list[str]] = []
    for piece in text.split(","):
        if "=" in piece:
            name, _, value = piece.partition("=")
            pairs.append([name.strip(), value])
        elif pairs:
            pairs[-1][1] += "," + piece
        else:
            raise FilterError(f"key {text!r}: expected col=value,... or a JSON list of the key's values")
    return [(name, value) for name, value in pairs]


def _wire(value: Any, column: str, sql_type: str) -> Any:
    """An operator's key value -> the wire value `row_clock_key` expects for this column type."""
    if value is None:
        raise FilterError(f"key column {column!r}: a primary-key value is never null")
    kind, fsp = key_kind(sql_type)
    if kind == "int":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            _bad(value, column, "an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            _bad(value, column, "an integer")
    if kind == "decimal":
        scale = int(sql_type.split(",")[1].rstrip(")").strip()) if "," in sql_type else 0
        try:
            return str(Decimal(str(value)).quantize(Decimal(1).scaleb(-scale)))
        except InvalidOperation:
            _bad(value, column, "a decimal number")
    text = str(value)
    if kind == "datetime" and fsp and re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{0,6})?$", text):
        whole, _, fraction = text.partition(".")
        return f"{whole}.{fraction.ljust(6, '0')}"   # the wire carries 6 digits whenever fsp > 0
    return text


def _bad(value: Any, column: str, what: str) -> Any:
    raise FilterError(f"key column {column!r}: {value!r} is not {what}")


def parse_key(text: str, key_columns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """`--key` -> the row's pk as wire values, in key order. `key_columns` are the table's primary-key
    (column, type) in key order. Accepted: a JSON list of the key's values in key order (`[42]`,
    `["k", 7]`), or `col=value,...` naming every key column once, in any order. Binary key values
    are given as the conflict log prints them (base64)."""
    names = [name for name, _ in key_columns]
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            values = orjson.loads(stripped)
        except orjson.JSONDecodeError as err:
            raise FilterError(f"key {text!r}: not valid JSON ({err})") from None
        if len(values) != len(names):
            raise FilterError(f"key {text!r}: {len(values)} values for the {len(names)} key columns {names}")
        given = dict(zip(names, values))
    else:
        given = {}
        for name, value in _split_assignments(stripped):
            if name not in names:
                raise FilterError(f"key {text!r}: {name!r} is not a key column (key columns: {names})")
            if name in given:
                raise FilterError(f"key {text!r}: {name!r} given twice")
            given[name] = value
        missing = [n for n in names if n not in given]
        if missing:
            raise FilterError(f"key {text!r}: missing key columns {missing}")
    try:
        return {name: _wire(given[name], name, sql_type) for name, sql_type in key_columns}
    except UnsupportedKey as err:
        raise FilterError(str(err)) from None


def canonical_key(text: str, key_columns: Sequence[tuple[str, str]], fold: dict[str, str] | None = None) -> str:
    """`--key` -> the key identity the conflict log's `pk_hash` is computed from (`fold`: the key's
    text columns that fold, column -> collation, weights loaded: any spelling finds the row)."""
    pk = parse_key(text, key_columns)
    try:
        return row_identity(pk, dict(key_columns), fold)
    except (ValueError, TypeError) as err:   # e.g. a binary value that is not base64
        raise FilterError(f"key {text!r}: {err}") from None
