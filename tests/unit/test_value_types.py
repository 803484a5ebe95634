"""A change event whose value cannot be its column's type is poison (`wrong_type`), named precisely."""

from __future__ import annotations

import pytest

from consumers.records import SourceRecord
from schemas.codec import encode
from schemas.values import value_type_problem

FITTING = {   # one wire value of every rule of schemas/values.py
    "int": 5, "bigint unsigned": 18446744073709551615, "tinyint(1)": 0, "bit(5)": 3, "year": 2024,
    "decimal(10,2)": "-1.50", "float": 1.5, "double": 2, "date": "2024-01-01",
    "datetime(6)": "2024-01-01 00:00:00.000001", "timestamp": {"$zero_date": "0000-00-00 00:00:00"},
    "time(2)": "-838:59:59.00", "varchar(10)": "x", "longtext": "", "enum('a','b')": "", "varbinary(4)": "AAE=",
    "blob": "", "set('x','y')": ["x", "y"], "json": {"any": [1, "thing"]}, "geometry": {"srid": 0, "wkb": "AQ=="},
    "char(3)": "abc",
}


def test_every_wire_value_of_its_type_fits() -> None:
    types = {f"c{i}": t for i, t in enumerate(FITTING)}
    image = {f"c{i}": v for i, v in enumerate(FITTING.values())}
    assert value_type_problem(types, {"after": image}) is None
    assert value_type_problem(types, {"after": dict.fromkeys(image)}) is None      # NULL fits every column


@pytest.mark.parametrize(("sql_type", "value", "named"), [
    ("int", "abc", "str 'abc'"), ("int", "12", "str '12'"), ("bigint", 1.5, "float 1.5"), ("int", True, "bool True"),
    ("decimal(10,2)", 1.5, "float 1.5"), ("double", "1.5", "str '1.5'"), ("varchar(4)", 7, "int 7"),
    ("datetime", 20240101, "int 20240101"), ("set('a')", "a", "str 'a'"), ("geometry", "POINT(1 1)", "str"),
])
def test_a_value_of_another_type_is_named_with_its_column(sql_type: str, value: object, named: str) -> None:
    problem = value_type_problem({"id": "int", "c": sql_type}, {"pk": {"id": 1}, "after": {"id": 1, "c": value}})
    assert problem is not None and problem.startswith(f"column 'c' (after) is {sql_type}, but the value is the JSON ")
    assert named in problem


def test_the_record_is_dead_lettered_as_wrong_type() -> None:
    event = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "eu", "server_id": 1, "gtid": "0-1-1",
             "binlog_file": "b.000001", "binlog_pos": 4, "txn_id": "t", "ts_us": 0, "db": "d", "table": "items",
             "txn_index": 0, "txn_last": True, "op": "update", "pk": {"id": 1}, "before": {"id": 1, "qty": 2}, "after": {"id": 1, "qty": "three"},
             "types": {"id": "int", "qty": "int"}}
    record = SourceRecord.from_message("t", 0, 9, b"[1]", encode(event))
    assert record.event is None and record.error_kind == "wrong_type"
    assert record.error == "d.items: column 'qty' (after) is int, but the value is the JSON str 'three'"
