"""Wire values (schemas/values.py) -> PyMySQL query parameters that store the identical value.

Every column binds with a plain `%s`, geometry included: MariaDB (and MySQL) accept a geometry
column's internal value, the 4-byte little-endian SRID followed by the WKB, as a binary string,
so `to_db_param` returns those bytes and the applier needs no ST_GeomFromWKB special case.

The applier's session must run `SESSION_SETUP` first: TIMESTAMPs arrive in UTC, zero and invalid
dates must be stored as they are, the invalid ENUM value '' is stored as such (strict mode would
refuse it), and an AUTO_INCREMENT column given 0 must keep 0.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson

from schemas.values import ZERO_DATE, is_zero_date

SESSION_SETUP = "SET SESSION time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES'"

Param = Callable[[Any], Any]


def _bytes(value: str) -> bytes:
    return binascii.a2b_base64(value)


def _geometry(value: dict[str, Any]) -> bytes:
    return value["srid"].to_bytes(4, "little") + binascii.a2b_base64(value["wkb"])


def _json(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _set(value: list[str]) -> str:
    return ",".join(value)


def _temporal(value: Any) -> Any:
    return value[ZERO_DATE] if is_zero_date(value) else value


_BY_BASE: dict[str, Param] = {
    "binary": _bytes, "varbinary": _bytes,
    "tinyblob": _bytes, "blob": _bytes, "mediumblob": _bytes, "longblob": _bytes,
    "geometry": _geometry, "json": _json, "set": _set,
    "date": _temporal, "datetime": _temporal, "timestamp": _temporal,
}


@lru_cache(maxsize=4096)
def param_converter(sql_type: str) -> Param | None:
    """The converter for one `types` entry, or None when the wire value binds as it is
    (integers, DECIMAL strings, floats, BIT and YEAR integers, text, ENUM labels, TIME text)."""
    base = sql_type.split("(", 1)[0].split(" ", 1)[0]
    return _BY_BASE.get(base)


def to_db_param(value: Any, sql_type: str) -> Any:
    """The parameter to bind with `%s` so a column of `sql_type` stores exactly `value`."""
    if value is None:
        return None
    convert = param_converter(sql_type)
    return value if convert is None else convert(value)
