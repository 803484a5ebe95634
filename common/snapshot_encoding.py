"""Rows read by the consistent snapshot (a plain SELECT) -> the same wire values as the binlog path.

The SELECT list asks the server for forms that carry the full value over the text protocol
(temporal values as their raw text, FLOAT widened to DOUBLE, BIT as an integer), and the
converters then produce exactly what `TableEncoder` produces for the same stored row.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import orjson

from common.table_catalog import ColumnInfo, TableColumns
from schemas.identifiers import quote_name
from schemas.values import Converter, b64, format_decimal, geometry, zero_date

_INTS = {"tinyint", "smallint", "mediumint", "int", "bigint"}
_LOBS = {"tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob"}
_SPATIAL = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
            "geometrycollection", "geomcollection"}
# MariaDB's fixed-size binary types reach the binlog as BINARY(n) and are encoded as such.
_FIXED_BINARY = {"uuid": 16, "inet6": 16, "inet4": 4}


def _valid_date(text: str) -> bool:
    try:
        datetime.date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def _date(text: str) -> Any:
    return text if _valid_date(text) else zero_date(text)


def _datetime(fsp: int) -> Converter:
    pad = "0" * (6 - fsp) if fsp else ""

    # MariaDB prints `fsp` digits; the wire wants 6, except in the raw text of a zero date.
    def convert(text: str) -> Any:
        return text + pad if _valid_date(text) else zero_date(text)
    return convert


def _time(fsp: int) -> Converter:
    pad = "0" * (6 - fsp) if fsp else ""
    return lambda text: text + pad


def _set(text: str) -> list[str]:
    return sorted(text.split(",")) if text else []


def _fsp(column_type: str) -> int:
    return int(column_type[column_type.index("(") + 1:column_type.index(")")]) if "(" in column_type else 0


def describe(column: ColumnInfo, is_json: bool = False) -> tuple[str, str, Converter | None]:
    """(SQL type string as TableEncoder names it, SELECT expression, converter of the fetched value)."""
    name, data_type, column_type = quote_name(column.name), column.data_type, column.column_type
    base = column_type.split(" ", 1)[0]  # drops `unsigned`, `zerofill`
    if is_json or data_type == "json":
        return "json", name, orjson.loads
    if data_type in _INTS:
        return data_type + (" unsigned" if " unsigned" in column_type else ""), name, None
    if data_type == "year":
        return "year", name, None
    if data_type == "decimal":
        return base, name, format_decimal
    if data_type == "float":
        # FLOAT prints with 6 digits; widened to DOUBLE it prints its exact float32 value.
        return "float", f"CAST({name} AS DOUBLE)", None
    if data_type == "double":
        return "double", name, None
    if data_type == "bit":
        return base, f"CAST({name} AS UNSIGNED)", None
    if data_type == "date":
        return "date", f"CAST({name} AS CHAR)", _date
    if data_type in ("datetime", "timestamp"):
        # TIMESTAMP prints in the session time zone, hence the caller's time_zone='+00:00'.
        return base, f"CAST({name} AS CHAR)", _datetime(_fsp(base))
    if data_type == "time":
        return base, f"CAST({name} AS CHAR)", _time(_fsp(base))
    if data_type in ("char", "varchar", "enum"):
        return (column_type if data_type == "enum" else base), name, None
    if data_type == "set":
        return column_type, name, _set
    if data_type in ("binary", "varbinary"):
        return base, name, b64
    if data_type in _LOBS:
        return data_type, name, (b64 if data_type.endswith("blob") else None)
    if data_type in _SPATIAL:
        return "geometry", name, geometry
    if data_type in _FIXED_BINARY:
        size = _FIXED_BINARY[data_type]
        return f"binary({size})", f"CAST({name} AS BINARY({size}))", b64
    raise ValueError(f"column {column.name!r}: unsupported type {column_type!r}")


class SnapshotEncoder:
    """Encodes snapshot rows of one table: run `SELECT {select_list} FROM db.table ...` and pass
    each row tuple (PyMySQL text protocol, default converters) to `encode_row`. `json_columns`
    defaults to the one `snapshot_columns()` found.

    The SELECT's session must have `time_zone = '+00:00'`: TIMESTAMP values are read as text in
    the session time zone, and the wire carries them in UTC.
    """

    __slots__ = ("types", "select_list", "_names", "_converters")

    def __init__(self, table: TableColumns | Sequence[ColumnInfo], json_columns: frozenset[str] | None = None) -> None:
        if isinstance(table, TableColumns):
            columns, json_columns = table.columns, table.json_columns if json_columns is None else json_columns
        else:
            columns, json_columns = tuple(table), json_columns or frozenset()
        self.types: dict[str, str] = {}
        expressions: list[str] = []
        converters: list[tuple[int, str, Converter]] = []
        for index, column in enumerate(columns):
            sql_type, expression, convert = describe(column, column.name in json_columns)
            self.types[column.name] = sql_type
            expressions.append(expression)
            if convert is not None:
                converters.append((index, column.name, convert))
        self.select_list: str = ", ".join(expressions)
        self._names = tuple(c.name for c in columns)
        self._converters = tuple(converters)

    def encode_row(self, row: Sequence[Any]) -> dict[str, Any]:
        """Column name -> wire value of one fetched row (in `select_list` order)."""
        out = dict(zip(self._names, row))
        for index, name, convert in self._converters:
            value = row[index]
            if value is not None:
                out[name] = convert(value)
        return out
