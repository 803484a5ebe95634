"""Value encoding rules, both directions, with hand-built binlog columns and packed binlog bytes."""

from __future__ import annotations

import base64
import datetime
import math
import struct
from decimal import Decimal
from types import SimpleNamespace

import orjson
import pytest
from pymysqlreplication.constants import FIELD_TYPE as F
from pymysqlreplication.row_event import RowsEvent

from common.snapshot_encoding import SnapshotEncoder
from common.table_catalog import ColumnInfo
from consumers.db.params import param_converter, to_db_param
from producers.binlog import fixes as binlog_fixes
from producers.binlog.fixes import ZeroDate
from producers.binlog.value_encoding import TableEncoder, format_time

Z = "$zero_date"


def col(type_: int, name: str = "c", **attrs) -> SimpleNamespace:
    """A stand-in for pymysqlreplication.column.Column as the table map fills it in."""
    base = {"name": name, "type": type_, "unsigned": False, "character_set_name": None, "collation_name": None,
            "enum_values": None, "set_values": None}
    return SimpleNamespace(**{**base, **attrs})


def text(name: str = "c", max_length: int = 40, type_: int = F.VARCHAR, collation: str = "utf8mb4_unicode_ci",
         **attrs) -> SimpleNamespace:
    return col(type_, name, max_length=max_length, character_set_name="utf8", collation_name=collation, **attrs)


def binary(type_: int, name: str = "c", **attrs) -> SimpleNamespace:
    return col(type_, name, character_set_name="binary", collation_name="binary", **attrs)


def encode(column: SimpleNamespace, value, none_source: str | None = None, json: frozenset[str] = frozenset()):
    encoder = TableEncoder([column], json)
    return encoder.encode_row({column.name: value}, {column.name: none_source} if none_source else {})[column.name]


def type_of(column: SimpleNamespace, json: frozenset[str] = frozenset()) -> str:
    return TableEncoder([column], json).types[column.name]


# -- integers, floats, text: untouched -----------------------------------------------------------

INT_CASES = [(F.TINY, "tinyint", 8), (F.SHORT, "smallint", 16), (F.INT24, "mediumint", 24),
             (F.LONG, "int", 32), (F.LONGLONG, "bigint", 64)]


@pytest.mark.parametrize("type_, name, bits", INT_CASES)
def test_integers_full_range_and_type_names(type_: int, name: str, bits: int) -> None:
    for unsigned, values in ((False, (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)), (True, (0, 2**bits - 1))):
        column = col(type_, unsigned=unsigned)
        assert type_of(column) == name + (" unsigned" if unsigned else "")
        for value in values:
            assert encode(column, value) == value
    assert encode(col(F.LONGLONG, unsigned=True), 18446744073709551615) == 2**64 - 1


def test_columns_needing_no_conversion_are_not_touched() -> None:
    columns = [col(F.LONG, "i"), col(F.FLOAT, "f", size=4), col(F.DOUBLE, "d", size=8), text("s"),
               col(F.ENUM, "e", enum_values=["", "a"], size=1), text("t", type_=F.BLOB, length_size=2)]
    marker = object()  # any call would have to return something else
    row = TableEncoder(columns, frozenset()).encode_row({c.name: marker for c in columns}, {})
    assert all(value is marker for value in row.values())


def test_encode_row_returns_a_new_dict_and_keeps_nulls() -> None:
    encoder = TableEncoder([col(F.YEAR, "y"), col(F.NEWDECIMAL, "d", precision=5, decimals=2)])
    values = {"y": 1900, "d": None}
    assert encoder.encode_row(values, {"d": "null"}) == {"y": 0, "d": None}
    assert values == {"y": 1900, "d": None}


def test_float_and_double_stay_numbers() -> None:
    f32 = struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert encode(col(F.FLOAT, size=4), f32) == f32 and type_of(col(F.FLOAT, size=4)) == "float"
    assert encode(col(F.DOUBLE, size=8), 5e-324) == 5e-324 and type_of(col(F.DOUBLE, size=8)) == "double"


# -- DECIMAL ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, wire", [
    (Decimal("-12.340"), "-12.340"), (Decimal("0.00"), "0.00"), (Decimal("0E-10"), "0.0000000000"),
    (Decimal("-0.00001"), "-0.00001"), (Decimal("1E+5"), "100000"), (Decimal("-99999999999999999999"),
                                                                       "-99999999999999999999"),
    (Decimal("9" * 35 + "." + "9" * 30), "9" * 35 + "." + "9" * 30),
    (Decimal("0." + "0" * 29 + "1"), "0." + "0" * 29 + "1"),
])
def test_decimal_is_an_exact_string_without_exponent(value: Decimal, wire: str) -> None:
    column = col(F.NEWDECIMAL, precision=65, decimals=30)
    assert encode(column, value) == wire
    assert type_of(column) == "decimal(65,30)"


# -- BIT, YEAR ----------------------------------------------------------------------------------

def test_bit_string_becomes_an_integer() -> None:
    assert encode(col(F.BIT, bits=1, bytes=1), "1") == 1
    assert encode(col(F.BIT, bits=10, bytes=2), "1000000001") == 513
    assert encode(col(F.BIT, bits=64, bytes=8), "1" * 64) == 2**64 - 1
    assert type_of(col(F.BIT, bits=10, bytes=2)) == "bit(10)"


def test_year_zero_is_zero_not_1900() -> None:
    column = col(F.YEAR)
    assert [encode(column, y) for y in (1900, 1901, 2155)] == [0, 1901, 2155]
    assert type_of(column) == "year"


# -- dates and times -----------------------------------------------------------------------------

def test_date_and_zero_dates() -> None:
    column = col(F.DATE)
    assert encode(column, datetime.date(1, 1, 1)) == "0001-01-01"
    assert encode(column, datetime.date(9999, 12, 31)) == "9999-12-31"
    assert encode(column, ZeroDate("0000-00-00")) == {Z: "0000-00-00"}
    assert encode(column, ZeroDate("2024-05-00")) == {Z: "2024-05-00"}
    assert type_of(column) == "date"


@pytest.mark.parametrize("fsp", range(7))
def test_datetime_has_six_fraction_digits_when_fsp_is_positive(fsp: int) -> None:
    column = col(F.DATETIME2, fsp=fsp)
    value = datetime.datetime(2024, 2, 29, 12, 34, 56, 120000 if fsp else 0)
    assert encode(column, value) == "2024-02-29 12:34:56" + (".120000" if fsp else "")
    assert encode(column, datetime.datetime(2024, 1, 1)) == "2024-01-01 00:00:00" + (".000000" if fsp else "")
    raw = "2024-05-00 10:11:12" + ("." + "5".ljust(fsp, "0") if fsp else "")
    assert encode(column, ZeroDate(raw)) == {Z: raw}
    assert type_of(column) == ("datetime" if fsp == 0 else f"datetime({fsp})")


def test_old_datetime_layout_has_no_fsp() -> None:
    column = col(F.DATETIME)
    assert encode(column, datetime.datetime(1000, 1, 1, 0, 0, 1)) == "1000-01-01 00:00:01"
    assert type_of(column) == "datetime"


@pytest.mark.parametrize("fsp", [0, 3, 6])
def test_timestamp_in_utc_and_zero_timestamp(fsp: int) -> None:
    column = col(F.TIMESTAMP2, fsp=fsp)
    suffix = ".000000" if fsp else ""
    assert encode(column, datetime.datetime(2038, 1, 19, 3, 14, 7)) == "2038-01-19 03:14:07" + suffix
    assert encode(column, datetime.datetime(1970, 1, 1, 0, 0, 1)) == "1970-01-01 00:00:01" + suffix
    zero = encode(column, datetime.datetime(1970, 1, 1))
    assert zero == {Z: "0000-00-00 00:00:00" + ("." + "0" * fsp if fsp else "")}
    assert type_of(column) == ("timestamp" if fsp == 0 else f"timestamp({fsp})")


def td(text_: str) -> datetime.timedelta:
    h, m, s = text_.lstrip("-").split(":")
    whole, _, frac = s.partition(".")
    value = datetime.timedelta(hours=int(h), minutes=int(m), seconds=int(whole), microseconds=int(frac.ljust(6, "0")))
    return -value if text_.startswith("-") else value


@pytest.mark.parametrize("value, fsp, wire", [
    ("-838:59:59.000001", 6, "-838:59:59.000001"), ("-838:59:59.999999", 6, "-838:59:59.999999"),
    ("838:59:59", 0, "838:59:59"), ("-838:59:59", 0, "-838:59:59"), ("00:00:00", 0, "00:00:00"),
    ("-00:00:00.5", 1, "-00:00:00.500000"), ("-00:00:01.01", 2, "-00:00:01.010000"),
    ("-12:34:56.789", 3, "-12:34:56.789000"), ("100:00:00.0001", 4, "100:00:00.000100"),
    ("23:59:59.99999", 5, "23:59:59.999990"), ("00:00:00", 6, "00:00:00.000000"),
])
def test_time_may_be_negative_and_above_24_hours(value: str, fsp: int, wire: str) -> None:
    column = col(F.TIME2, fsp=fsp)
    assert encode(column, td(value)) == wire
    assert type_of(column) == ("time" if fsp == 0 else f"time({fsp})")


# -- strings, binary, ENUM, SET ------------------------------------------------------------------

def test_char_and_varchar_lengths_are_characters_not_bytes() -> None:
    assert type_of(text(max_length=40, type_=F.STRING)) == "char(10)"
    assert type_of(text(max_length=1200)) == "varchar(300)"
    assert type_of(text(max_length=20, collation="latin1_swedish_ci")) == "varchar(20)"
    assert type_of(text(max_length=30, collation="utf8mb3_general_ci")) == "varchar(10)"
    assert encode(text(), "é😀") == "é😀"


@pytest.mark.parametrize("length_size, size", [(1, "tiny"), (2, ""), (3, "medium"), (4, "long")])
def test_blob_and_text_sizes(length_size: int, size: str) -> None:
    assert type_of(binary(F.BLOB, length_size=length_size)) == f"{size}blob"
    assert type_of(col(F.BLOB, length_size=length_size, character_set_name="utf8",
                       collation_name="utf8mb4_bin")) == f"{size}text"
    all_bytes = bytes(range(256))
    assert encode(binary(F.BLOB, length_size=length_size), all_bytes) == base64.b64encode(all_bytes).decode()


def test_binary_strings_are_base64_and_binary_keeps_its_padding() -> None:
    assert encode(binary(F.VARCHAR, max_length=10), b"\x00\xff") == "AP8="
    assert type_of(binary(F.VARCHAR, max_length=10)) == "varbinary(10)"
    # The binlog drops BINARY(n)'s trailing zeros, and an empty value arrives as ''.
    assert encode(binary(F.STRING, max_length=4), b"ab") == base64.b64encode(b"ab\0\0").decode()
    assert encode(binary(F.STRING, max_length=4), "") == "AAAAAA=="
    assert encode(binary(F.VARCHAR, max_length=4), "") == ""
    assert type_of(binary(F.STRING, max_length=16)) == "binary(16)"


def test_enum_label_and_type_quoting() -> None:
    column = col(F.ENUM, enum_values=["", "a", "it's", "b\\c", "new\nline\x1a"], size=1)
    assert encode(column, "") == "" and encode(column, "it's") == "it's"
    assert type_of(column) == "enum('a','it''s','b\\\\c','new\\nline\x1a')"


def test_set_is_a_sorted_list_and_empty_set_is_not_null() -> None:
    column = col(F.SET, set_values=["x", "y", "ü"], size=1)
    assert encode(column, {"ü", "x"}) == ["x", "ü"]
    assert encode(column, None, "empty set") == []
    assert encode(column, None, "null") is None
    assert type_of(column) == "set('x','y','ü')"


# -- JSON, GEOMETRY ------------------------------------------------------------------------------

def test_mariadb_json_is_parsed_from_longtext() -> None:
    column = col(F.BLOB, "j", length_size=4, character_set_name="utf8", collation_name="utf8mb4_bin")
    doc = '{"a":{"b":[1,2.5,"é",null,true]},"k":"v"}'
    assert encode(column, doc, json=frozenset({"j"})) == {"a": {"b": [1, 2.5, "é", None, True]}, "k": "v"}
    assert type_of(column, frozenset({"j"})) == "json"
    assert encode(column, doc) == doc  # without the catalog's word it is just LONGTEXT


def test_mysql_json_bytes_become_strings() -> None:
    column = col(F.JSON, length_size=4)
    assert encode(column, {b"k\xc3\xa9": [b"v", 1, {b"n": None}]}) == {"ké": ["v", 1, {"n": None}]}
    assert type_of(column) == "json"


def test_geometry_splits_srid_and_wkb() -> None:
    wkb = struct.pack("<BIdd", 1, 1, 1.5, -2.25)
    column = binary(F.GEOMETRY, length_size=4)
    assert encode(column, struct.pack("<I", 4326) + wkb) == {"srid": 4326, "wkb": base64.b64encode(wkb).decode()}
    assert type_of(column) == "geometry"


def test_unknown_column_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        TableEncoder([col(F.VAR_STRING + 100)])


# -- binlog_fixes: readers against bytes packed as MySQL/MariaDB pack them ------------------------

class FakePacket:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, size: int) -> bytes:
        chunk = self.data[self.pos:self.pos + size]
        assert len(chunk) == size, "read past the value"
        self.pos += size
        return chunk

    def read_uint24(self) -> int:
        return int.from_bytes(self.read(3), "little")

    def read_uint64(self) -> int:
        return int.from_bytes(self.read(8), "little")

    def read_int_be_by_size(self, size: int) -> int:
        return int.from_bytes(self.read(size), "big", signed=True)


class FakeEvent:
    _RowsEvent__read_fsp = RowsEvent._RowsEvent__read_fsp
    _RowsEvent__read_binary_slice = RowsEvent._RowsEvent__read_binary_slice

    def __init__(self, data: bytes) -> None:
        self.packet = FakePacket(data)


def decode(reader: str, data: bytes, *args):
    binlog_fixes.install()
    event = FakeEvent(data)
    value = getattr(RowsEvent, reader)(event, *args)
    assert event.packet.pos == len(data), "must consume exactly the value's bytes"
    return value


def c_div(a: int, b: int) -> int:
    return int(math.copysign(abs(a) // b, a))  # C integer division truncates toward zero


def pack_time2(value: str, fsp: int) -> bytes:
    """MySQL's TIME_to_longlong_time_packed + my_time_packed_to_binary (sql-common/my_time.cc)."""
    t = td(value)
    micro = abs(t // datetime.timedelta(microseconds=1))
    seconds, frac = divmod(micro, 1_000_000)
    hms = (seconds // 3600) << 12 | (seconds // 60 % 60) << 6 | seconds % 60
    nr = (hms << 24) + frac
    nr = -nr if t < datetime.timedelta(0) else nr
    if fsp >= 5:
        return (nr + 0x800000000000).to_bytes(6, "big")
    head = ((nr >> 24) + 0x800000).to_bytes(3, "big")
    c_frac = int(math.fmod(nr, 1 << 24))
    if fsp == 0:
        return head
    if fsp <= 2:
        return head + (c_div(c_frac, 10000) & 0xFF).to_bytes(1, "big")
    return head + (c_div(c_frac, 100) & 0xFFFF).to_bytes(2, "big")


@pytest.mark.parametrize("value, fsp", [
    ("-838:59:59.000001", 6), ("-838:59:59.999999", 6), ("838:59:59.999999", 6), ("838:59:59", 0),
    ("-838:59:59", 0), ("00:00:00", 0), ("-00:00:00.01", 2), ("-00:00:01.01", 2), ("-00:00:00.5", 1),
    ("-00:00:01.99", 2), ("-12:34:56.789", 3), ("-00:00:01.0001", 4), ("-00:00:00.0001", 4),
    ("-00:00:00.00001", 5), ("-100:00:00.00001", 5), ("12:34:56.5", 1), ("-01:00:00", 0),
    ("-00:00:00.000001", 6),
])
def test_time2_decodes_negative_fractions(value: str, fsp: int) -> None:
    decoded = decode("_RowsEvent__read_time2", pack_time2(value, fsp), SimpleNamespace(fsp=fsp))
    assert decoded == td(value)
    assert format_time(decoded, 6) == format_time(td(value), 6)


def test_time2_fixes_the_reported_value() -> None:
    decoded = decode("_RowsEvent__read_time2", pack_time2("-838:59:59.000001", 6), SimpleNamespace(fsp=6))
    assert format_time(decoded, 6) == "-838:59:59.000001"


def pack_date(y: int, m: int, d: int) -> bytes:
    return (y << 9 | m << 5 | d).to_bytes(3, "little")


def test_date_keeps_zero_and_partly_zero_values() -> None:
    assert decode("_RowsEvent__read_date", pack_date(2024, 2, 29)) == datetime.date(2024, 2, 29)
    for y, m, d, raw in ((0, 0, 0, "0000-00-00"), (2024, 5, 0, "2024-05-00"), (2024, 2, 30, "2024-02-30"),
                         (0, 1, 1, "0000-01-01")):
        value = decode("_RowsEvent__read_date", pack_date(y, m, d))
        assert type(value) is ZeroDate and value == raw


def pack_datetime2(y: int, mo: int, d: int, h: int, mi: int, s: int, micro: int, fsp: int) -> bytes:
    """MySQL's my_datetime_packed_to_binary: 5 bytes, then the fraction in (fsp+1)//2 bytes."""
    head = ((1 << 39) | (y * 13 + mo) << 22 | d << 17 | h << 12 | mi << 6 | s).to_bytes(5, "big")
    size = (fsp + 1) // 2
    return head + (micro // 10 ** (6 - 2 * size)).to_bytes(size, "big") if size else head


@pytest.mark.parametrize("fsp", range(7))
def test_datetime2_keeps_zero_dates_with_their_fraction(fsp: int) -> None:
    micro = 500000 if fsp else 0
    valid = decode("_RowsEvent__read_datetime2", pack_datetime2(2024, 2, 29, 23, 59, 58, micro, fsp),
                   SimpleNamespace(fsp=fsp))
    assert valid == datetime.datetime(2024, 2, 29, 23, 59, 58, micro)
    zero = decode("_RowsEvent__read_datetime2", pack_datetime2(2024, 5, 0, 10, 11, 12, micro, fsp),
                  SimpleNamespace(fsp=fsp))
    assert type(zero) is ZeroDate
    assert zero == "2024-05-00 10:11:12" + ("." + "5".ljust(fsp, "0") if fsp else "")
    assert decode("_RowsEvent__read_datetime2", pack_datetime2(0, 0, 0, 0, 0, 0, 0, fsp),
                  SimpleNamespace(fsp=fsp)) == "0000-00-00 00:00:00" + ("." + "0" * fsp if fsp else "")


def test_old_datetime_keeps_zero_dates() -> None:
    def pack(v: int) -> bytes:
        return v.to_bytes(8, "little")
    assert decode("_RowsEvent__read_datetime", pack(20240229235958)) == datetime.datetime(2024, 2, 29, 23, 59, 58)
    assert decode("_RowsEvent__read_datetime", pack(0)) == "0000-00-00 00:00:00"
    assert decode("_RowsEvent__read_datetime", pack(20240500101112)) == "2024-05-00 10:11:12"


def test_install_is_idempotent_and_latin1_decodes_every_byte() -> None:
    binlog_fixes.install()
    binlog_fixes.install()
    assert RowsEvent._RowsEvent__read_time2 is binlog_fixes._read_time2
    encoding = RowsEvent.charset_to_encoding("cp1252")
    decoded = bytes(range(256)).decode(encoding)
    assert decoded[0x80] == "€" and decoded[0x81] == "\x81" and decoded[0x9D] == "\x9d" and decoded[0xE9] == "é"
    assert RowsEvent.charset_to_encoding("utf8") == "utf8"


# -- snapshot path: same types and values from information_schema and text-protocol rows -----------

def info(name: str, data_type: str, column_type: str) -> ColumnInfo:
    return ColumnInfo(name, data_type, column_type, 1)


PARITY = [  # (binlog column, information_schema column) that must name the same type
    (col(F.LONGLONG, unsigned=True), info("c", "bigint", "bigint(20) unsigned")),
    (col(F.TINY), info("c", "tinyint", "tinyint(1)")),
    (col(F.NEWDECIMAL, precision=20, decimals=6), info("c", "decimal", "decimal(20,6)")),
    (col(F.FLOAT, size=4), info("c", "float", "float")), (col(F.DOUBLE, size=8), info("c", "double", "double")),
    (col(F.BIT, bits=10, bytes=2), info("c", "bit", "bit(10)")), (col(F.YEAR), info("c", "year", "year(4)")),
    (col(F.DATE), info("c", "date", "date")), (col(F.DATETIME2, fsp=3), info("c", "datetime", "datetime(3)")),
    (col(F.DATETIME2, fsp=0), info("c", "datetime", "datetime")),
    (col(F.TIMESTAMP2, fsp=6), info("c", "timestamp", "timestamp(6)")),
    (col(F.TIME2, fsp=0), info("c", "time", "time")),
    (text(type_=F.STRING, max_length=40), info("c", "char", "char(10)")),
    (text(max_length=1200), info("c", "varchar", "varchar(300)")),
    (binary(F.STRING, max_length=8), info("c", "binary", "binary(8)")),
    (binary(F.VARCHAR, max_length=300), info("c", "varbinary", "varbinary(300)")),
    (binary(F.BLOB, length_size=3), info("c", "mediumblob", "mediumblob")),
    (col(F.BLOB, length_size=1, character_set_name="utf8", collation_name="utf8mb4_bin"),
     info("c", "tinytext", "tinytext")),
    (col(F.ENUM, enum_values=["", "a", "it's"], size=1), info("c", "enum", "enum('a','it''s')")),
    (col(F.SET, set_values=["x", "y"], size=1), info("c", "set", "set('x','y')")),
    (binary(F.GEOMETRY, length_size=4), info("c", "point", "point")),
    (binary(F.STRING, max_length=16), info("c", "uuid", "uuid")),
    (binary(F.STRING, max_length=4), info("c", "inet4", "inet4")),
]


@pytest.mark.parametrize("binlog_column, info_column", PARITY)
def test_binlog_and_snapshot_name_the_same_type(binlog_column, info_column: ColumnInfo) -> None:
    assert TableEncoder([binlog_column]).types == SnapshotEncoder([info_column]).types


def test_json_type_on_both_paths() -> None:
    column = col(F.BLOB, "j", length_size=4, character_set_name="utf8", collation_name="utf8mb4_bin")
    assert TableEncoder([column], frozenset({"j"})).types == SnapshotEncoder(
        [info("j", "longtext", "longtext")], frozenset({"j"})).types == {"j": "json"}


def test_snapshot_rows_encode_like_the_binlog() -> None:
    columns = [info("dt", "datetime", "datetime(3)"), info("z", "datetime", "datetime(1)"),
               info("ts", "timestamp", "timestamp"), info("tm", "time", "time(2)"), info("d", "date", "date"),
               info("st", "set", "set('x','y')"), info("e", "set", "set('x','y')"), info("b", "bit", "bit(64)"),
               info("dec", "decimal", "decimal(10,0)"), info("bin", "varbinary", "varbinary(4)"),
               info("g", "geometry", "geometry"), info("we`ird", "int", "int(11)")]
    encoder = SnapshotEncoder(columns)
    assert encoder.select_list == (
        "CAST(`dt` AS CHAR), CAST(`z` AS CHAR), CAST(`ts` AS CHAR), CAST(`tm` AS CHAR), CAST(`d` AS CHAR),"
        " `st`, `e`, CAST(`b` AS UNSIGNED), `dec`, `bin`, `g`, `we``ird`")
    point = struct.pack("<I", 4326) + struct.pack("<BIdd", 1, 1, 0, 0)
    row = encoder.encode_row(("2024-01-02 03:04:05.120", "2024-05-00 10:11:12.5", "0000-00-00 00:00:00",
                              "-00:00:01.01", "0000-00-00", "y,x", "", 2**64 - 1, Decimal("-5"), b"\x00",
                              point, None))
    assert row == {"dt": "2024-01-02 03:04:05.120000", "z": {Z: "2024-05-00 10:11:12.5"},
                   "ts": {Z: "0000-00-00 00:00:00"}, "tm": "-00:00:01.010000", "d": {Z: "0000-00-00"},
                   "st": ["x", "y"], "e": [], "b": 2**64 - 1, "dec": "-5", "bin": "AA==",
                   "g": {"srid": 4326, "wkb": base64.b64encode(point[4:]).decode()}, "we`ird": None}


# -- consumer side: wire value -> query parameter ------------------------------------------------

@pytest.mark.parametrize("value, sql_type, param", [
    (None, "varbinary(4)", None), (5, "int unsigned", 5), (2**64 - 1, "bit(64)", 2**64 - 1),
    ("-12.340", "decimal(10,3)", "-12.340"), (0.1, "double", 0.1), (0, "year", 0), ("é", "varchar(3)", "é"),
    ("AP8=", "varbinary(4)", b"\x00\xff"), ("", "blob", b""), ("YWIAAAAAAAA=", "binary(8)", b"ab\0\0\0\0\0\0"),
    (["x", "ü"], "set('x','ü')", "x,ü"), ([], "set('x')", ""), ("", "enum('a')", ""),
    ({Z: "2024-05-00 10:11:12.5"}, "datetime(1)", "2024-05-00 10:11:12.5"), ({Z: "0000-00-00"}, "date", "0000-00-00"),
    ("2024-01-02 03:04:05.000000", "timestamp(6)", "2024-01-02 03:04:05.000000"),
    ("-838:59:59.000001", "time(6)", "-838:59:59.000001"),
    ({"srid": 4326, "wkb": "AQE="}, "geometry", b"\xe6\x10\x00\x00\x01\x01"),
])
def test_to_db_param(value, sql_type: str, param) -> None:
    assert to_db_param(value, sql_type) == param


def test_json_param_is_compact_json_text() -> None:
    doc = {"a": [1, 2.5, "é", None], "k": {"n": True}}
    param = to_db_param(doc, "json")
    assert isinstance(param, str) and orjson.loads(param) == doc and param == '{"a":[1,2.5,"é",null],"k":{"n":true}}'
    assert to_db_param(None, "json") is None  # SQL NULL


def test_param_converter_is_none_for_values_that_bind_as_they_are() -> None:
    for sql_type in ("int", "bigint unsigned", "decimal(5,2)", "float", "double", "bit(3)", "year", "char(3)",
                     "longtext", "enum('a')", "time(3)"):
        assert param_converter(sql_type) is None
