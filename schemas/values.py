"""How column values are encoded on the wire (JSON). The `types` map of an event says which rule applies.

| SQL type                         | wire value                                                        |
|----------------------------------|-------------------------------------------------------------------|
| TINYINT..BIGINT (signed/unsigned)| JSON integer, full range                                           |
| DECIMAL                          | string, exact (`"-12.340"`), never a float                        |
| FLOAT, DOUBLE                    | JSON number (a FLOAT is its exact float32 value)                  |
| BIT(n)                           | JSON integer                                                      |
| DATE                             | `"YYYY-MM-DD"`                                                    |
| DATETIME(fsp)                    | `"YYYY-MM-DD HH:MM:SS[.ffffff]"` (6 digits when fsp > 0)          |
| TIMESTAMP(fsp)                   | as DATETIME, in UTC                                               |
| TIME(fsp)                        | `"[-]HHH:MM:SS[.ffffff]"`, may be negative or above 24 h          |
| zero or partly-zero date/time    | `{"$zero_date": "0000-00-00 00:00:00"}` (the raw text), not null  |
| YEAR                             | JSON integer (0 for YEAR 0000)                                    |
| CHAR, VARCHAR, TEXT              | string                                                            |
| BINARY, VARBINARY, BLOB          | base64 string                                                     |
| ENUM                             | its label (`""` for the invalid value)                            |
| SET                              | sorted list of labels                                             |
| JSON                             | the JSON value itself, object keys as strings                     |
| GEOMETRY                         | `{"srid": int, "wkb": base64 of the WKB}`                         |
| NULL                             | null                                                              |
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

ZERO_DATE = "$zero_date"

# A per-column function from a decoded value to its wire value.
Converter = Callable[[Any], Any]


def b64(value: bytes) -> str:
    # An empty binary value arrives as '' (str): b''.decode() skips the failing codec lookup.
    return binascii.b2a_base64(value, newline=False).decode("ascii") if value else ""


def format_decimal(value: Any) -> str:
    # format "f" never switches to exponent notation and keeps the scale (Decimal('0E-10') too).
    return format(value, "f")


def geometry(value: bytes) -> dict[str, Any]:
    """MariaDB's internal geometry value: 4-byte little-endian SRID, then WKB."""
    return {"srid": int.from_bytes(value[:4], "little"), "wkb": b64(value[4:])}


def zero_date(raw: str) -> dict[str, str]:
    """The explicit marker for a zero (or partly zero) date, carrying its raw text."""
    return {ZERO_DATE: raw}


def is_zero_date(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and ZERO_DATE in value


# -- checking a decoded event's values against its `types` (the table above) ------------------------
_INTEGER = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "bit", "year")
_TEXT = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "decimal", "time",
         "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_temporal(value: Any) -> bool:
    return isinstance(value, str) or is_zero_date(value)


def _is_set(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_geometry(value: Any) -> bool:
    return isinstance(value, dict) and _is_int(value.get("srid")) and isinstance(value.get("wkb"), str)


_WIRE_CHECKS: dict[str, Any] = {
    **{t: _is_int for t in _INTEGER}, **{t: _is_str for t in _TEXT},
    "float": _is_number, "double": _is_number, "real": _is_number,
    "date": _is_temporal, "datetime": _is_temporal, "timestamp": _is_temporal,
    "set": _is_set, "geometry": _is_geometry,
}   # json: any JSON value; a type not listed here is not checked


_CHECK_OF: dict[str, Any] = {}


def _check_of(sql_type: str) -> Any:
    """The wire check of a column type (`int unsigned`, `decimal(10,2)`), remembered per spelling:
    a sink checks every value of every event."""
    try:
        return _CHECK_OF[sql_type]
    except KeyError:
        check = _WIRE_CHECKS.get(sql_type.split("(", 1)[0].split(" ", 1)[0].lower())
        if len(_CHECK_OF) < 10_000:   # spellings come from the stream: bounded all the same
            _CHECK_OF[sql_type] = check
        return check


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:39] + '…'}"


def value_type_problem(types: dict[str, str], images: dict[str, dict[str, Any] | None]) -> str | None:
    """The first value of `images` (name -> column -> wire value) whose JSON type cannot be its
    column's SQL type, named with the column, the type and the value; None if every value fits.

    A sink would otherwise store it as something else (a cache keeps the string, a database casts
    `"12"` to 12 or refuses `"abc"` only in strict mode), so the event is poison: it is dead-lettered."""
    for image_name, image in images.items():
        if not image:
            continue
        for column, value in image.items():
            if value is None:
                continue
            sql_type = types.get(column)
            if sql_type is None:
                continue
            check = _check_of(sql_type)
            if check is not None and not check(value):
                return (f"column {column!r} ({image_name}) is {sql_type}, but the value is the JSON "
                        f"{_describe(value)}")
    return None
