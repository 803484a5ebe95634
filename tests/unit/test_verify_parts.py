"""Pure parts of `cdcsync verify`: key ranges, checksum SQL, row and cache comparison, the report's JSON."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cdcsync.tools.verify import (OCCURRENCES, CacheDifference, RowDifference, TableResult, VerifyReport,
    cache_mismatch, checksum_sql, chunk_ranges, column_digest, diff_rows, glob_escape, range_condition, row_key,
    row_kind, schema_problems)
from common.table_catalog import ColumnInfo


def evaluate(condition: str, params: list[Any], row: dict[str, Any]) -> bool:
    """Evaluate the generated SQL condition (ORs of ANDs of `col op %s`) on a row, in Python."""
    values = iter(params)
    python = re.sub(r"`(\w+)` (=|>=|>|<) %s",
                    lambda m: f"(row[{m.group(1)!r}] {'==' if m.group(2) == '=' else m.group(2)} {next(values)!r})",
                    condition)
    python = python.replace(" AND ", " and ").replace(" OR ", " or ").replace("TRUE", "True")
    assert next(values, None) is None, "every parameter used"
    return eval(python, {"row": row})


def test_range_condition_single_and_composite_keys() -> None:
    assert range_condition(["id"], (5,), (9,)) == ("((`id` >= %s)) AND ((`id` < %s))", [5, 9])
    assert range_condition(["id"], None, None) == ("TRUE", [])
    sql, params = range_condition(["a", "b"], ("x", 3), None)
    assert sql == "((`a` > %s) OR (`a` = %s AND `b` >= %s))" and params == ["x", "x", 3]
    sql, params = range_condition(["a", "b", "c"], None, (1, 2, 3))
    assert sql == "((`a` < %s) OR (`a` = %s AND `b` < %s) OR (`a` = %s AND `b` = %s AND `c` < %s))"
    assert params == [1, 1, 2, 1, 2, 3]


keys = st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3))


@given(st.lists(keys, unique=True), st.lists(keys, unique=True, max_size=6))
def test_chunk_ranges_put_every_key_in_exactly_one_chunk(rows: list[tuple], boundaries: list[tuple]) -> None:
    """Whichever region holds a key (below, between or above the reference's boundaries), exactly one
    chunk's condition matches it, and it is the chunk tuple order says."""
    ranges = chunk_ranges(sorted(boundaries))
    assert len(ranges) == len(boundaries) + 1 and ranges[0][0] is None and ranges[-1][1] is None
    for key in rows:
        row = dict(zip("abc", key))
        matching = [i for i, (lo, hi) in enumerate(ranges) if evaluate(*range_condition("abc", lo, hi), row)]
        expected = [i for i, (lo, hi) in enumerate(ranges) if (lo is None or lo <= key) and (hi is None or key < hi)]
        assert matching == expected and len(matching) == 1


def test_no_boundaries_is_one_open_chunk() -> None:
    assert chunk_ranges([]) == [(None, None)]


def test_column_digest_by_type() -> None:
    def column(data_type: str, column_type: str) -> ColumnInfo:
        return ColumnInfo("c", data_type, column_type, 1)

    assert column_digest(column("int", "int(11)"), False) == "IFNULL(MD5(`c`), 'N')"
    assert column_digest(column("varchar", "varchar(10)"), False) == "IFNULL(MD5(CONVERT(`c` USING utf8mb4)), 'N')"
    assert column_digest(column("datetime", "datetime(6)"), False) == "IFNULL(MD5(CAST(`c` AS CHAR)), 'N')"
    assert column_digest(column("float", "float"), False) == "IFNULL(MD5(CAST(`c` AS DOUBLE)), 'N')"
    assert column_digest(column("longtext", "longtext"), True) == "IFNULL(MD5(JSON_COMPACT(`c`)), 'N')"
    assert column_digest(column("json", "json"), False, "mysql") == "IFNULL(MD5(`c`), 'N')"
    assert column_digest(column("blob", "blob"), False) == "IFNULL(MD5(`c`), 'N')"


def test_checksum_sql_counts_and_sums_64_bit_row_digests() -> None:
    sql = checksum_sql("`d`.`t`", ["IFNULL(MD5(`a`), 'N')", "IFNULL(MD5(`b`), 'N')"], "TRUE")
    assert sql == ("SELECT COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT(IFNULL(MD5(`a`), 'N'), "
                   "IFNULL(MD5(`b`), 'N'))), 16), 16, 10) AS UNSIGNED)), 0) FROM `d`.`t` WHERE TRUE")


def test_row_key_is_the_canonical_primary_key() -> None:
    assert row_key({"id": 42, "v": "x"}, ["id"]) == "[42]"
    assert row_key({"k": "a", "n": 7, "v": None}, ["k", "n"]) == '["a",7]'


def test_row_kind_by_majority_then_first_region() -> None:
    regions = ("eu", "us", "ap")
    assert row_kind(regions, (), regions) == "differs"
    assert row_kind(("eu", "us"), ("ap",), regions) == "missing"
    assert row_kind(("us",), ("eu", "ap"), regions) == "extra"
    assert row_kind(("eu",), ("us",), ("eu", "us")) == "missing"
    assert row_kind(("us",), ("eu",), ("eu", "us")) == "extra"


def test_diff_rows_reports_missing_extra_and_differing_columns() -> None:
    def rows(*items: dict[str, Any]) -> dict[str, tuple[dict[str, Any], int]]:
        return {row_key(r, ["id"]): (r, 1) for r in items}

    same = {"id": 1, "amount": "1.00", "at": "2024-01-01 00:00:00.000001", "note": None}
    chunk = {
        "eu": rows(same, {"id": 2, "amount": "2.00", "at": None, "note": None},
                   {"id": 3, "amount": "3.00", "at": None, "note": ""}),
        "us": rows(same, {"id": 2, "amount": "2.01", "at": None, "note": None},
                   {"id": 3, "amount": "3.00", "at": None, "note": None},
                   {"id": 9, "amount": "9.00", "at": None, "note": None}),
        "ap": rows({**same, "at": "2024-01-01 00:00:00.000002"}, {"id": 3, "amount": "3.00", "at": None, "note": ""}),
    }
    diffs = diff_rows("d.t", chunk, ("eu", "us", "ap"), ["id", "amount", "at", "note"], ["id"])
    assert diffs == [
        RowDifference("d.t", {"id": 1}, "differs", ("eu", "us", "ap"), (),
                      {"at": {"eu": "2024-01-01 00:00:00.000001", "us": "2024-01-01 00:00:00.000001",
                              "ap": "2024-01-01 00:00:00.000002"}}),
        RowDifference("d.t", {"id": 2}, "missing", ("eu", "us"), ("ap",), {"amount": {"eu": "2.00", "us": "2.01"}}),
        RowDifference("d.t", {"id": 3}, "differs", ("eu", "us", "ap"), (), {"note": {"eu": "", "us": None, "ap": ""}}),
        RowDifference("d.t", {"id": 9}, "extra", ("us",), ("eu", "ap"), {}),
    ]


def test_diff_rows_counts_duplicates_of_a_keyless_table() -> None:
    row = {"a": 1, "b": "x"}
    key = row_key(row, ["a", "b"])
    diffs = diff_rows("d.k", {"eu": {key: (row, 2)}, "us": {key: (row, 1)}}, ("eu", "us"), ["a", "b"], ["a", "b"])
    assert diffs == [RowDifference("d.k", {"a": 1, "b": "x"}, "differs", ("eu", "us"), (),
                                   {OCCURRENCES: {"eu": 2, "us": 1}})]
    assert diff_rows("d.k", {"eu": {key: (row, 2)}, "us": {key: (row, 2)}}, ("eu", "us"), ["a", "b"], ["a", "b"]) == []


def test_cache_mismatch_names_each_side() -> None:
    db = {"id": 1, "name": "a", "price": "1.50"}
    assert cache_mismatch(db, dict(db)) == {}
    assert cache_mismatch(db, {"id": 1, "name": "b", "price": "1.50"}) == {"name": {"database": "a", "cache": "b"}}
    assert cache_mismatch(db, {"id": 1, "name": "a", "old": 3}) == {"price": {"database": "1.50"}, "old": {"cache": 3}}


def test_schema_problems_keep_the_common_columns() -> None:
    types = {"eu": {"id": "int", "v": "decimal(12,2)", "x": "int"},
             "us": {"id": "int", "v": "decimal(12,3)", "x": "int", "y": "int"}}
    problems, common = schema_problems(types, ("eu", "us"))
    assert common == ["id", "x"]
    assert problems == ["column v: decimal(12,2) in eu, decimal(12,3) in us", "column y: only in us"]


def test_glob_escape() -> None:
    assert glob_escape("p:d.t_[1]*?") == "p:d.t_\\[1\\]\\*\\?"


def test_report_json_and_verdict() -> None:
    report = VerifyReport(("eu", "us"), 10, True, max_details=1)
    table = TableResult("d.t", ("eu", "us"), "eu", {"eu": 3, "us": 3}, chunks=2)
    report.tables.append(table)
    assert report.ok
    table.differing_chunks = 1   # checksums differed, rows equal: not a difference
    assert report.ok
    table.cache_differences = 2
    for key in ("p:d.t:[1]", "p:d.t:[2]"):
        report.add_cache_difference(CacheDifference("d.t", "us", key, "extra", row={"id": 1}))
    assert not report.ok and len(report.cache_details) == 1
    data = report.to_json()
    assert data["ok"] is False and data["cache_differences"] == 2 and data["row_differences"] == 0
    assert data["tables"][0]["rows"] == {"eu": 3, "us": 3} and data["tables"][0]["ok"] is False
    assert data["cache_details"] == [{"table": "d.t", "region": "us", "key": "p:d.t:[1]", "kind": "extra",
                                      "columns": {}, "row": {"id": 1}}]
    skipped = TableResult("d.k", skipped="no primary key")
    assert skipped.ok
