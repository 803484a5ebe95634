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

from typing import Any

ZERO_DATE = "$zero_date"


def zero_date(raw: str) -> dict[str, str]:
    """The explicit marker for a zero (or partly zero) date, carrying its raw text."""
    return {ZERO_DATE: raw}


def is_zero_date(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and ZERO_DATE in value
