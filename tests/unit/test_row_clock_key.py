"""The canonical row-clock key (Python side) and the trigger generators' SQL text."""

from __future__ import annotations

import base64
import hashlib

import pytest

from common.clock_triggers import trigger_name, triggers
from schemas.row_clock_key import UnsupportedKey, key_hash, key_kind, row_clock_key, sql_key_expression


def test_key_format_is_length_prefixed_text_in_key_order() -> None:
    assert row_clock_key({"id": 42}, {"id": "int"}) == "2:42"
    assert row_clock_key({"k": "k", "n": 7}, {"k": "varchar(10)", "n": "bigint unsigned"}) == "1:k,1:7"
    # Separators inside values cannot be confused with the structure.
    assert row_clock_key({"a": "1:x,", "b": 2}, {"a": "varchar(9)", "b": "int"}) == "4:1:x,,1:2"
    assert row_clock_key({"a": "é😀"}, {"a": "char(4)"}) == "2:é😀"


@pytest.mark.parametrize(("value", "sql_type", "text"), [
    (-9223372036854775808, "bigint", "-9223372036854775808"),
    (18446744073709551615, "bigint unsigned", "18446744073709551615"),
    ("-12.340", "decimal(10,3)", "-12.340"),
    (base64.b64encode(b"\x00\xffab").decode(), "varbinary(8)", "00ff6162"),
    ("", "varbinary(8)", ""),
    (base64.b64encode(b"ab\0\0").decode(), "binary(4)", "61620000"),
    ("2024-02-29", "date", "2024-02-29"),
    ({"$zero_date": "2024-05-00"}, "date", "2024-05-00"),
    ("2024-02-29 12:34:56", "datetime", "2024-02-29 12:34:56"),
    ("2024-02-29 12:34:56.789000", "datetime(3)", "2024-02-29 12:34:56.789"),
    ("2024-02-29 12:34:56.000001", "datetime(6)", "2024-02-29 12:34:56.000001"),
    ({"$zero_date": "0000-00-00 00:00:00.000"}, "datetime(3)", "0000-00-00 00:00:00.000"),
])
def test_canonical_text_per_type(value, sql_type, text) -> None:
    assert row_clock_key({"c": value}, {"c": sql_type}) == f"{len(text)}:{text}"


def test_unsupported_types_are_refused() -> None:
    for sql_type in ("timestamp", "time(3)", "float", "double", "enum('a')", "year", "bit(3)", "text"):
        with pytest.raises(UnsupportedKey):
            key_kind(sql_type)
    assert key_kind("int(11) unsigned") == ("int", 0) and key_kind("datetime(3)") == ("datetime", 3)


def test_key_hash_is_sha256_of_the_utf8_text() -> None:
    assert key_hash("1:é") == hashlib.sha256("1:é".encode("utf-8")).digest() and len(key_hash("2:42")) == 32
    assert key_hash("1:é") != key_hash("1:e")


def test_sql_key_expression() -> None:
    sql = sql_key_expression([("id", "int(11)"), ("b`x", "varbinary(4)")], "NEW")
    assert sql == ("CONCAT(CHAR_LENGTH(CONVERT(CAST(NEW.`id` AS CHAR) USING utf8mb4)), ':', "
                   "CONVERT(CAST(NEW.`id` AS CHAR) USING utf8mb4), ',', "
                   "CHAR_LENGTH(LOWER(HEX(NEW.`b``x`))), ':', LOWER(HEX(NEW.`b``x`)))")


def test_trigger_names_fit_and_stay_unique() -> None:
    assert trigger_name("orders", "INSERT") == "cdcsync_orders_ai"
    long_a, long_b = "x" * 60 + "a", "x" * 60 + "b"
    assert len(trigger_name(long_a, "UPDATE")) <= 64
    assert trigger_name(long_a, "UPDATE") != trigger_name(long_b, "UPDATE")


def test_triggers_are_guarded_and_deterministic() -> None:
    kw = dict(meta_db="cdcsync", db="shop", table="o'rders", pk=[("id", "int")], region="eu",
              columns=[("id", "int")])
    made = triggers(**kw)
    assert [t.event for t in made] == ["INSERT", "UPDATE", "DELETE"]
    assert [t.name for t in made] == ["cdcsync_o'rders_ai", "cdcsync_o'rders_au", "cdcsync_o'rders_ad"]
    assert all("IF COALESCE(@cdcsync_applying, 0) = 0 " in t.body for t in made)
    assert "IF COALESCE(@cdcsync_applying, 0) = 0 AND NOT (CAST(OLD.`id` AS BINARY) <=> CAST(NEW.`id` AS BINARY)) THEN" \
        in made[1].body   # the update ticks only when a column changed
    assert "'o''rders'" in made[0].body and "deleted = 1" in made[2].body
    assert made[0].create()[0].startswith("CREATE OR REPLACE TRIGGER `shop`.`cdcsync_o'rders_ai` AFTER INSERT ON "
                                       "`shop`.`o'rders` FOR EACH ROW BEGIN")
    assert triggers(**kw) == made
    # A key change ticks each key's own clock: the new key never reads the old key's counters.
    assert made[1].body.count("INSERT INTO `cdcsync`.`row_clocks`") == 3 and "JSON_MERGE_PATCH" not in made[1].body
