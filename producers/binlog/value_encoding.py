"""Binlog row values (as python-mysql-replication decodes them) -> wire values (schemas/values.py).

`TableEncoder` is built once per table map and then sits on the producer's hot path: the
per-column work is chosen at construction, and columns whose decoded value already is the wire
value (integers, floats, text, ENUM) are not touched at all. Requires `binlog_fixes.install()`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pymysqlreplication.constants import FIELD_TYPE as F
from pymysqlreplication.constants import NONE_SOURCE

from producers.binlog.fixes import ZeroDate
from schemas.values import Converter, b64, format_decimal, geometry, zero_date


_INT_TYPES = {F.TINY: "tinyint", F.SHORT: "smallint", F.INT24: "mediumint", F.LONG: "int", F.LONGLONG: "bigint"}
_BLOB_PREFIX = {1: "tiny", 2: "", 3: "medium", 4: "long"}
# Bytes per character, to turn the binlog's CHAR/VARCHAR byte lengths back into declared lengths.
_MBMAXLEN = {"utf8mb4": 4, "utf8mb3": 3, "utf8": 3, "utf16": 4, "utf16le": 4, "utf32": 4, "ucs2": 2,
             "big5": 2, "cp932": 2, "eucjpms": 3, "euckr": 2, "gb2312": 2, "gbk": 2, "gb18030": 4,
             "sjis": 2, "ujis": 3}
_EPOCH = datetime.datetime(1970, 1, 1)


def format_time(value: datetime.timedelta, fsp: int) -> str:
    """`[-]HH:MM:SS[.ffffff]`, hours unbounded (TIME ranges over +-838 h)."""
    micro = value // datetime.timedelta(microseconds=1)
    sign = "-" if micro < 0 else ""
    seconds, micro = divmod(abs(micro), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    text = f"{sign}{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{micro:06d}" if fsp else text


# Escaped as information_schema.COLUMNS.COLUMN_TYPE escapes labels, so both paths agree.
_LABEL_ESCAPES = str.maketrans({"\0": "\\0", "\n": "\\n", "\r": "\\r", "\\": "\\\\", "'": "''"})


def enum_type(labels: Sequence[str]) -> str:
    return "(" + ",".join("'" + label.translate(_LABEL_ESCAPES) + "'" for label in labels) + ")"


def with_fsp(name: str, fsp: int) -> str:
    return f"{name}({fsp})" if fsp else name


def _mysql_json(value: Any) -> Any:
    # MySQL's binary JSON decodes to bytes keys and bytes strings.
    if isinstance(value, dict):
        return {_mysql_json(k): _mysql_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mysql_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def _date(value: Any) -> Any:
    return zero_date(value) if value.__class__ is ZeroDate else value.isoformat()


def _datetime(fsp: int) -> Converter:
    spec = "microseconds" if fsp else "seconds"

    def convert(value: Any) -> Any:
        if value.__class__ is ZeroDate:
            return zero_date(value)
        return value.isoformat(" ", spec)
    return convert


def _timestamp(fsp: int) -> Converter:
    spec = "microseconds" if fsp else "seconds"
    zero = "0000-00-00 00:00:00" + ("." + "0" * fsp if fsp else "")

    # The library decodes a zero TIMESTAMP as the epoch, which no real TIMESTAMP can be.
    def convert(value: datetime.datetime) -> Any:
        return zero_date(zero) if value == _EPOCH else value.isoformat(" ", spec)
    return convert


def _binary(length: int) -> Converter:
    # The binlog drops BINARY(n)'s trailing 0x00 padding; the stored value always has n bytes.
    def convert(value: bytes) -> str:
        return b64((value or b"").ljust(length, b"\0"))
    return convert


def _charset(column: Any) -> str:
    collation = getattr(column, "collation_name", None)
    if collation:
        return collation.split("_", 1)[0]
    return getattr(column, "character_set_name", None) or "utf8mb4"


def _year(value: int) -> int:
    return 0 if value == 1900 else value


def _bits(value: str) -> int:
    return int(value, 2)


def describe(column: Any, is_json: bool = False) -> tuple[str, Converter | None]:
    """The SQL type string and the wire converter (None: no conversion) of one binlog column."""
    t = column.type
    if t in _INT_TYPES:
        return _INT_TYPES[t] + (" unsigned" if column.unsigned else ""), None
    if t == F.YEAR:
        return "year", _year
    if t == F.NEWDECIMAL:
        return f"decimal({column.precision},{column.decimals})", format_decimal
    if t == F.FLOAT:
        return "float", None
    if t == F.DOUBLE:
        return "double", None
    if t == F.BIT:
        return f"bit({column.bits})", _bits
    if t in (F.DATE, F.NEWDATE):
        return "date", _date
    fsp = getattr(column, "fsp", 0) or 0
    if t in (F.DATETIME, F.DATETIME2):
        return with_fsp("datetime", fsp), _datetime(fsp)
    if t in (F.TIMESTAMP, F.TIMESTAMP2):
        return with_fsp("timestamp", fsp), _timestamp(fsp)
    if t in (F.TIME, F.TIME2):
        return with_fsp("time", fsp), lambda v: format_time(v, fsp)
    if t == F.ENUM:
        return "enum" + enum_type(column.enum_values[1:]), None
    if t == F.SET:
        return "set" + enum_type(column.set_values), sorted
    if t == F.GEOMETRY:
        return "geometry", geometry
    if t == F.JSON:
        return "json", _mysql_json
    binary = _charset(column) == "binary"
    if t == F.BLOB:
        if is_json:
            return "json", orjson.loads
        size = _BLOB_PREFIX[column.length_size]
        return (size + "blob", b64) if binary else (size + "text", None)
    if t == F.STRING:
        if binary:
            return f"binary({column.max_length})", _binary(column.max_length)
        return f"char({column.max_length // _MBMAXLEN.get(_charset(column), 1)})", None
    if t in (F.VARCHAR, F.VAR_STRING):
        if binary:
            return f"varbinary({column.max_length})", b64
        return f"varchar({column.max_length // _MBMAXLEN.get(_charset(column), 1)})", None
    raise ValueError(f"column {column.name!r}: unsupported binlog column type {t}")


class TableEncoder:
    """Encodes the rows of one table version (one table map) to wire values.

    `columns` is `event.columns` of a rows event (or of its table map); `json_columns` names the
    columns declared JSON, which MariaDB logs as LONGTEXT (see common.table_catalog).
    """

    __slots__ = ("types", "_converters", "_sets")

    def __init__(self, columns: Sequence[Any], json_columns: frozenset[str] = frozenset()) -> None:
        self.types: dict[str, str] = {}
        converters: list[tuple[str, Converter]] = []
        for column in columns:
            sql_type, convert = describe(column, column.name in json_columns)
            self.types[column.name] = sql_type
            if convert is not None:
                converters.append((column.name, convert))
        self._converters = tuple(converters)
        self._sets = tuple(c.name for c in columns if c.type == F.SET)

    def encode_row(self, values: Mapping[str, Any], none_sources: Mapping[str, str]) -> dict[str, Any]:
        """A new dict of wire values; `values` and `none_sources` as in a rows event's row."""
        row = dict(values)
        for name, convert in self._converters:
            value = row[name]
            if value is not None:
                row[name] = convert(value)
        if none_sources:
            # The library reports an empty SET as None; only none_sources tells it from NULL.
            for name in self._sets:
                if none_sources.get(name) == NONE_SOURCE.EMPTY_SET:
                    row[name] = []
        return row
