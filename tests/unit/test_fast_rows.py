"""producers/binlog/fast_rows.py against the library's own readers, on synthetic rows-event bytes.

The oracle is python-mysql-replication 1.0.17 itself (with binlog_fixes) plus TableEncoder, run on
the same bytes through `RowsEvent._read_column_data`. The property: whenever the fast decoder
returns, the library decodes the same bytes to the same wire values (serialized bytes equal);
and on valid encodings the fast decoder does return. Random bytes reach the corners real servers
never write (invalid dates, out-of-range fractions and enum indexes, undecodable text).
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from pymysql.protocol import MysqlPacket
from pymysqlreplication.column import Column
from pymysqlreplication.constants import FIELD_TYPE as F
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import (DeleteRowsEvent, PartialUpdateRowsEvent, UpdateRowsEvent, WriteRowsEvent,
                                          find_charset)
from pymysqlreplication.table import Table

from producers.binlog import fixes as binlog_fixes, fast_rows
from producers.binlog.fast_rows import RowImages, Unsupported, compile_table
from producers.binlog.value_encoding import TableEncoder

binlog_fixes.install()

CHARSETS = {"utf8mb4": 45, "utf8mb4_bin": 46, "utf8mb3": 33, "latin1": 8, "latin1_bin": 47, "ascii": 11,
            "binary": 63, "cp1251": 51, "utf16": 54}
_EVENT_TYPES = {WriteRowsEvent: 30, UpdateRowsEvent: 31, DeleteRowsEvent: 32, PartialUpdateRowsEvent: 39}


def column(name: str, type_: int, **extra: Any) -> Column:
    """A Column as the library's table map leaves it."""
    charset = extra.pop("charset", None)
    attrs = {"type": type_, "name": name, "unsigned": False, "is_primary": False, "charset_id": None,
             "character_set_name": None, "collation_name": None, "enum_values": None, "set_values": None,
             "visibility": False, **extra}
    if charset is not None:
        attrs["character_set_name"], attrs["collation_name"], _ = find_charset(str(CHARSETS[charset]), "mariadb")
    return Column(**attrs)


# -- the library as the oracle -----------------------------------------------------------------
def shell_event(cls: type, columns: list[Column], body: bytes, *, bitmap: bytes | None = None,
                bitmap2: bytes | None = None) -> Any:
    """A rows event of class `cls` whose rows are `body`, as the library leaves it after __init__:
    the packet positioned at the first row (after some bytes already read), the checksum after."""
    full = bytes([0xFF] * (len(columns) // 8)) + (bytes([(1 << len(columns) % 8) - 1]) if len(columns) % 8 else b"")
    wrapper = object.__new__(BinLogPacketWrapper)
    wrapper.packet = MysqlPacket(b"H" * 27 + body + b"CRC4", "utf8")
    wrapper.packet._position = 27
    wrapper.read_bytes = 7
    wrapper._BinLogPacketWrapper__data_buffer = b""
    event = object.__new__(cls)
    event.__dict__.update({
        "packet": wrapper, "event_size": 7 + len(body), "event_type": _EVENT_TYPES[cls], "table_id": 1,
        "table_map": {1: Table(1, "db", "t", columns)}, "columns": columns, "number_of_columns": len(columns),
        "columns_present_bitmap": full if bitmap is None else bitmap, "complete": True, "schema": "db",
        "table": "t", "_ignore_decode_errors": False, "_ctl_connection": None, "_RowsEvent__rows": None,
        "_RowsEvent__none_sources": {}, "_RowsEvent__use_column_name_cache": False,
        "_RowsEvent__enable_logging": False})
    if cls in (UpdateRowsEvent, PartialUpdateRowsEvent):
        event.columns_present_bitmap2 = full if bitmap2 is None else bitmap2
    return event


def library_images(columns: list[Column], body: bytes) -> list[dict[str, Any]]:
    """The rows of `body` decoded by the library, encoded by TableEncoder; raises what they raise."""
    event = shell_event(WriteRowsEvent, columns, body)
    encoder = TableEncoder(columns)
    return [encoder.encode_row(row["values"], row["none_sources"]) for row in event.rows]


def fast_images(columns: list[Column], body: bytes) -> list[dict[str, Any]] | None:
    try:
        return compile_table(columns)(b"xx" + body + b"CRC4", 2, 2 + len(body))
    except Exception:  # noqa: BLE001 - any failure is a fallback
        return None


# -- value bytes ---------------------------------------------------------------------------------
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def pack_decimal(value: Decimal, precision: int, scale: int) -> bytes:
    """MariaDB's decimal2bin, written from the format description (independent of fast_rows).
    `value` must fit DECIMAL(precision, scale)."""
    text = format(value, "f")
    negative = text.startswith("-")
    int_text, _, frac_text = text.lstrip("-").partition(".")
    intg = precision - scale
    int_digits = int_text.rjust(intg, "0")[-intg:] if intg else ""
    frac_digits = frac_text.ljust(scale, "0")[:scale]
    out = bytearray()
    lead = intg % 9
    if lead:
        out += int(int_digits[:lead]).to_bytes(_DIG2BYTES[lead], "big")
    for i in range(lead, intg, 9):
        out += int(int_digits[i:i + 9]).to_bytes(4, "big")
    for i in range(0, scale - scale % 9, 9):
        out += int(frac_digits[i:i + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(frac_digits[scale - scale % 9:]).to_bytes(_DIG2BYTES[scale % 9], "big")
    if negative:
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


def random_decimal(rng: random.Random, precision: int, scale: int) -> Decimal:
    digits = "".join(rng.choice("0123456789") for _ in range(precision))
    digits = ("0" * rng.randint(0, precision) + digits)[-precision:]
    if rng.random() < 0.1:
        digits = "9" * precision
    text = (digits[:precision - scale] or "0") + ("." + digits[precision - scale:] if scale else "")
    return Decimal(("-" if rng.random() < 0.5 else "") + text)


def frac_bytes(rng: random.Random, fsp: int, valid: bool) -> bytes:
    size = (fsp + 1) // 2
    if not size:
        return b""
    if not valid:
        return rng.randbytes(size)
    micro = rng.randrange(10 ** 6)
    stored = (micro // 10 ** (6 - fsp)) * (10 if fsp % 2 else 1)
    return stored.to_bytes(size, "big")


def pack_datetime2(rng: random.Random, fsp: int) -> bytes:
    if rng.random() < 0.3:
        return rng.randbytes(5) + frac_bytes(rng, fsp, rng.random() < 0.5)
    year, month, day = rng.randint(0, 9999), rng.randint(0, 12), rng.randint(0, 31)
    hour, minute, second = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    packed = 1 << 39 | (year * 13 + month) << 22 | day << 17 | hour << 12 | minute << 6 | second
    return packed.to_bytes(5, "big") + frac_bytes(rng, fsp, True)


def pack_timestamp2(rng: random.Random, fsp: int) -> bytes:
    choice = rng.random()
    if choice < 0.1:
        return bytes(4) + bytes((fsp + 1) // 2)  # MariaDB's zero TIMESTAMP
    if choice < 0.3:
        return rng.randbytes(4) + frac_bytes(rng, fsp, rng.random() < 0.5)
    return rng.randrange(1, 2 ** 31).to_bytes(4, "big") + frac_bytes(rng, fsp, True)


def length_prefixed(rng: random.Random, size: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(size, "little") + payload


TEXT_POOL = {"utf8mb4": "aé中😀 \n'\\", "utf8mb4_bin": "xyz😀", "utf8mb3": "aé中 ", "ascii": "ab \x00\x7f",
             "latin1": bytes(range(256)).decode("cdcsync_mariadb_latin1"),
             "latin1_bin": bytes(range(256)).decode("cdcsync_mariadb_latin1")}
ENCODE = {"utf8mb4": "utf-8", "utf8mb4_bin": "utf-8", "utf8mb3": "utf-8", "ascii": "ascii",
          "latin1": "cdcsync_mariadb_latin1", "latin1_bin": "cdcsync_mariadb_latin1"}

Spec = tuple[Callable[[str], Column], Callable[[random.Random], bytes]]


def _int_spec(type_: int, size: int) -> list[Spec]:
    return [(lambda name, u=u: column(name, type_, unsigned=u), lambda rng: rng.randbytes(size)) for u in (False, True)]


def _text_spec(type_: int, charset: str, max_length: int = 0, length_size: int = 0) -> Spec:
    size = length_size or (2 if max_length > 255 else 1)
    limit = min(max_length or 300, 300, 2 ** (8 * size) - 1)

    def value(rng: random.Random) -> bytes:
        if charset == "binary" or rng.random() < 0.15:
            payload = rng.randbytes(rng.randint(0, limit))
        else:
            chars = "".join(rng.choice(TEXT_POOL[charset]) for _ in range(rng.randint(0, limit)))
            payload = chars.encode(ENCODE[charset])[:limit]
        return length_prefixed(rng, size, payload)
    extra = {"length_size": length_size} if length_size else {"max_length": max_length}
    return (lambda name: column(name, type_, charset=charset, **extra), value)


def _decimal_spec(precision: int, scale: int) -> Spec:
    size = fast_rows.decimal_size(precision, scale)

    def value(rng: random.Random) -> bytes:
        if rng.random() < 0.2:
            return rng.randbytes(size)
        return pack_decimal(random_decimal(rng, precision, scale), precision, scale)
    return (lambda name: column(name, F.NEWDECIMAL, precision=precision, decimals=scale), value)


def _enum_spec(labels: int, size: int) -> Spec:
    values = [""] + [f"l{i}" for i in range(labels)]
    return (lambda name: column(name, F.ENUM, size=size, enum_values=values),
            lambda rng: rng.randrange(labels + 3).to_bytes(size, "little"))


SPECS: list[Spec] = [
    *_int_spec(F.TINY, 1), *_int_spec(F.SHORT, 2), *_int_spec(F.INT24, 3), *_int_spec(F.LONG, 4),
    *_int_spec(F.LONGLONG, 8),
    (lambda name: column(name, F.FLOAT, size=4), lambda rng: rng.randbytes(4)),
    (lambda name: column(name, F.DOUBLE, size=8), lambda rng: rng.randbytes(8)),
    (lambda name: column(name, F.YEAR), lambda rng: rng.randbytes(1)),
    *[_decimal_spec(p, s) for p, s in [(1, 0), (5, 5), (9, 0), (10, 2), (12, 2), (18, 9), (19, 4), (38, 38), (65, 30)]],
    (lambda name: column(name, F.DATE), lambda rng: rng.randbytes(3)),
    *[(lambda name, f=f: column(name, F.DATETIME2, fsp=f), lambda rng, f=f: pack_datetime2(rng, f)) for f in range(7)],
    *[(lambda name, f=f: column(name, F.TIMESTAMP2, fsp=f), lambda rng, f=f: pack_timestamp2(rng, f))
      for f in range(7)],
    _enum_spec(3, 1), _enum_spec(300, 2),
    *[_text_spec(F.VARCHAR, cs, max_length=m) for cs in ("utf8mb4", "utf8mb3", "latin1", "ascii", "binary")
      for m in (40, 400)],
    *[_text_spec(F.STRING, cs, max_length=m) for cs in ("utf8mb4_bin", "latin1_bin", "ascii", "binary")
      for m in (16, 1020)],
    *[_text_spec(F.BLOB, cs, length_size=n) for cs in ("utf8mb4", "latin1", "binary") for n in (1, 2, 3, 4)],
]


def random_table(rng: random.Random) -> tuple[list[Column], list[Callable[[random.Random], bytes]]]:
    chosen = [rng.choice(SPECS) for _ in range(rng.randint(1, 12))]
    return [make(f"c{i}") for i, (make, _) in enumerate(chosen)], [value for _, value in chosen]


def random_rows(rng: random.Random, values: list[Callable[[random.Random], bytes]], rows: int) -> bytes:
    body = bytearray()
    for _ in range(rows):
        nulls = sum(1 << i for i in range(len(values)) if rng.random() < 0.2)
        body += nulls.to_bytes((len(values) + 7) // 8, "little")
        for i, value in enumerate(values):
            if not nulls & (1 << i):
                body += value(rng)
    return bytes(body)


# -- tests ---------------------------------------------------------------------------------------
def test_random_rows_equal_the_library_or_fall_back() -> None:
    rng = random.Random(7)
    fast_ok = library_ok = 0
    for _ in range(600):
        columns, values = random_table(rng)
        body = random_rows(rng, values, rng.choice([1, 1, 3]))
        fast = fast_images(columns, body)
        try:
            library = library_images(columns, body)
        except Exception:  # noqa: BLE001 - the library refuses these bytes
            library = None
        library_ok += library is not None
        if fast is None:
            continue
        fast_ok += 1
        assert library is not None, f"fast path decoded bytes the library refuses: {columns} {body.hex()}"
        assert orjson.dumps(fast) == orjson.dumps(library), (fast, library)
        assert [type(v) for row in fast for v in row.values()] == [type(v) for row in library for v in row.values()]
    assert fast_ok > 0.5 * library_ok  # not vacuous: most decodable rows take the fast path


@pytest.mark.parametrize("type_", [F.TINY, F.SHORT, F.INT24, F.LONG, F.LONGLONG])
def test_integer_extremes(type_: int) -> None:
    size = {F.TINY: 1, F.SHORT: 2, F.INT24: 3, F.LONG: 4, F.LONGLONG: 8}[type_]
    for unsigned in (False, True):
        columns = [column("v", type_, unsigned=unsigned)]
        for raw in (bytes(size), b"\xff" * size, b"\x7f" + b"\xff" * (size - 1), b"\xff" * (size - 1) + b"\x7f",
                    b"\x80" + bytes(size - 1), bytes(size - 1) + b"\x80"):
            body = b"\0" + raw
            assert fast_images(columns, body) == library_images(columns, body)
        assert fast_images(columns, b"\0" + b"\xff" * size)[0]["v"] == (2 ** (8 * size) - 1 if unsigned else -1)


def test_year_zero_and_extremes() -> None:
    columns = [column("y", F.YEAR)]
    assert [fast_images(columns, b"\0" + bytes([b]))[0]["y"] for b in (0, 1, 255)] == [0, 1901, 2155]
    for b in range(256):
        assert fast_images(columns, b"\0" + bytes([b])) == library_images(columns, b"\0" + bytes([b]))


@pytest.mark.parametrize("precision", range(1, 66))
def test_decimals_of_every_precision(precision: int) -> None:
    rng = random.Random(precision)
    for scale in sorted({0, 1, precision % 10, min(precision, 9), min(precision, 10), min(precision, 30),
                         min(precision, 38)}):
        columns = [column("d", F.NEWDECIMAL, precision=precision, decimals=scale)]
        specials = [Decimal(0), Decimal("-0"), Decimal("9" * (precision - scale) + "." + "9" * scale if scale else
                                                            "9" * precision)]
        for value in specials + [random_decimal(rng, precision, scale) for _ in range(20)]:
            body = b"\0" + pack_decimal(value, precision, scale)
            fast = fast_images(columns, body)
            assert fast is not None and fast == library_images(columns, body), (value, precision, scale)
            if value:
                assert Decimal(fast[0]["d"]) == value


def test_decimal_with_invalid_digit_groups_falls_back() -> None:
    columns = [column("d", F.NEWDECIMAL, precision=12, decimals=2)]
    valid = pack_decimal(Decimal("123.45"), 12, 2)
    assert fast_images(columns, b"\0" + valid) == [{"d": "123.45"}]
    invalid = valid[:1] + (10 ** 9).to_bytes(4, "big") + valid[5:]      # a 9-digit group holding 10 digits
    assert fast_images(columns, b"\0" + invalid) is None
    assert fast_images(columns, b"\0" + valid[:5] + bytes([100])) is None  # a 2-digit group holding 100


def test_dates_every_packed_value_equals_the_library() -> None:
    columns = [column("d", F.DATE)]
    for raw in list(range(0, 1 << 24, 4099)) + [0, 1, 1 << 9, (2024 << 9) | (2 << 5) | 30, (9999 << 9) | 415]:
        body = b"\0" + raw.to_bytes(3, "little")
        assert fast_images(columns, body) == library_images(columns, body), raw


@pytest.mark.parametrize("fsp", range(7))
def test_datetimes_and_zero_dates(fsp: int) -> None:
    rng = random.Random(fsp)
    columns = [column("t", F.DATETIME2, fsp=fsp)]
    zero = (1 << 39).to_bytes(5, "big") + bytes((fsp + 1) // 2)
    assert fast_images(columns, b"\0" + zero) == [{"t": {"$zero_date": "0000-00-00 00:00:00" +
                                                        ("." + "0" * fsp if fsp else "")}}]
    for _ in range(3000):
        body = b"\0" + pack_datetime2(rng, fsp)
        fast = fast_images(columns, body)
        assert fast is not None and fast == library_images(columns, body), body.hex()


@pytest.mark.parametrize("fsp", range(7))
def test_timestamps_over_the_signed_range(fsp: int) -> None:
    rng = random.Random(100 + fsp)
    columns = [column("t", F.TIMESTAMP2, fsp=fsp)]
    edges = [0, 1, -1, 86399, 86400, -86400, 951782400, 2 ** 31 - 1, -2 ** 31, 68256000]
    for seconds in edges + [rng.randint(-2 ** 31, 2 ** 31 - 1) for _ in range(2000)]:
        body = b"\0" + seconds.to_bytes(4, "big", signed=True) + frac_bytes(rng, fsp, True)
        fast = fast_images(columns, body)
        assert fast is not None and fast == library_images(columns, body), seconds
    negative = b"\0" + (5).to_bytes(4, "big") + b"\xff" * ((fsp + 1) // 2)  # -1: the library ignores it
    if fsp:
        assert fast_images(columns, negative) == library_images(columns, negative) == [{"t": "1970-01-01 00:00:05"
                                                                                         ".000000"}]
    out_of_range = b"\0" + (5).to_bytes(4, "big") + (0x0F4240).to_bytes(3, "big")  # 1000000 microseconds
    if fsp >= 5:
        assert fast_images(columns, out_of_range) is None
        with pytest.raises(ValueError):
            library_images(columns, out_of_range)


def test_enum_index_out_of_range_falls_back() -> None:
    columns = [column("e", F.ENUM, size=1, enum_values=["", "a", "b"])]
    assert [fast_images(columns, bytes([0, i])) for i in range(3)] == [[{"e": ""}], [{"e": "a"}], [{"e": "b"}]]
    assert fast_images(columns, bytes([0, 3])) is None
    with pytest.raises(IndexError):
        library_images(columns, bytes([0, 3]))


def test_text_charsets_and_binary_padding() -> None:
    columns = [column("u", F.VARCHAR, max_length=400, charset="utf8mb4"), column("l", F.STRING, max_length=20,
                                                                                  charset="latin1"),
               column("b", F.STRING, max_length=4, charset="binary"), column("e", F.BLOB, length_size=2,
                                                                             charset="binary")]
    body = (b"\0" + (4).to_bytes(2, "little") + "😀".encode() + b"\x02\x81\xe9" + b"\x01\x07" + b"\0\0")
    assert fast_images(columns, body) == library_images(columns, body) == [
        {"u": "😀", "l": "\x81é", "b": "BwAAAA==", "e": ""}]
    bad_utf8 = b"\0" + (1).to_bytes(2, "little") + b"\xff" + b"\0" + b"\0" + b"\0\0"
    assert fast_images(columns, bad_utf8) is None
    with pytest.raises(UnicodeDecodeError):
        library_images(columns, bad_utf8)


def test_null_in_every_column() -> None:
    columns = [make(f"c{i}") for i, (make, _) in enumerate(SPECS)]
    body = b"\xff" * ((len(columns) + 7) // 8)
    assert fast_images(columns, body) == library_images(columns, body) == [{c.name: None for c in columns}]


@pytest.mark.parametrize("make, reason", [
    (lambda: column("x", F.BIT, bits=3, bytes=1), "type 16"),
    (lambda: column("x", F.SET, size=1, set_values=["a"]), "type 248"),
    (lambda: column("x", F.TIME2, fsp=0), "type 19"),
    (lambda: column("x", F.TIME), "type 11"),
    (lambda: column("x", F.DATETIME), "type 12"),
    (lambda: column("x", F.TIMESTAMP), "type 7"),
    (lambda: column("x", F.GEOMETRY, length_size=4), "type 255"),
    (lambda: column("x", F.JSON, length_size=4), "type 245"),
    (lambda: column("x", F.VARCHAR, max_length=10, charset="cp1251"), "cp1251"),
    (lambda: column("x", F.VARCHAR, max_length=10, charset="utf16"), "utf16"),
    (lambda: column("x", F.VARCHAR, max_length=10), "character set"),           # no charset in the table map
    (lambda: column("x", F.ENUM, size=1, enum_values=None), "ENUM"),
    (lambda: column(None, F.LONG), "without a name"),                            # type: ignore[arg-type]
])
def test_uncovered_columns_are_refused(make: Callable[[], Column], reason: str) -> None:
    with pytest.raises(Unsupported, match=reason):
        compile_table([column("id", F.LONG), make()])
    if reason != "ENUM":  # TableEncoder itself needs an ENUM's labels
        images = RowImages([column("id", F.LONG), make()])
        assert images.decode is None and reason.split()[-1] in images.reason


def test_declared_json_column_is_refused() -> None:
    columns = [column("id", F.LONG), column("j", F.BLOB, length_size=4, charset="utf8mb4")]
    compile_table(columns)
    with pytest.raises(Unsupported, match="'j': a JSON column"):
        compile_table(columns, frozenset({"j"}))


def test_generated_source_holds_no_names_or_labels() -> None:
    evil = "evil'\"); import os #"
    columns = [column(evil, F.LONG), column("e", F.ENUM, size=1, enum_values=["", "x'); raise SystemExit('"]),
               column("d", F.NEWDECIMAL, precision=10, decimals=2)]
    source, ns = fast_rows.table_source(columns)
    assert "evil" not in source and "SystemExit" not in source and "'e'" not in source
    assert evil in ns.values()
    body = b"\0" + (7).to_bytes(4, "little") + b"\1" + pack_decimal(Decimal("-1.25"), 10, 2)
    assert compile_table(columns)(body, 0, len(body)) == [{evil: 7, "e": "x'); raise SystemExit('", "d": "-1.25"}]


# -- RowImages: which path an event takes ---------------------------------------------------------
TABLE = [column("id", F.LONG), column("v", F.VARCHAR, max_length=40, charset="utf8mb4"),
         column("d", F.NEWDECIMAL, precision=12, decimals=2)]


def _row(i: int, text: str, amount: str) -> bytes:
    payload = text.encode()
    return b"\0" + i.to_bytes(4, "little", signed=True) + bytes([len(payload)]) + payload + \
        pack_decimal(Decimal(amount), 12, 2)


def test_row_images_fast_path_for_every_event_class() -> None:
    images = RowImages(TABLE)
    body = _row(1, "a", "1.50") + _row(2, "b😀", "-2.25")
    write = shell_event(WriteRowsEvent, TABLE, body)
    assert images.images(write) == [{"id": 1, "v": "a", "d": "1.50"}, {"id": 2, "v": "b😀", "d": "-2.25"}]
    update = shell_event(UpdateRowsEvent, TABLE, body + _row(3, "", "0.00") + _row(4, "x", "9.99"))
    assert images.images(update) == [({"id": 1, "v": "a", "d": "1.50"}, {"id": 2, "v": "b😀", "d": "-2.25"}),
                                     ({"id": 3, "v": "", "d": "0.00"}, {"id": 4, "v": "x", "d": "9.99"})]
    delete = shell_event(DeleteRowsEvent, TABLE, body)
    assert images.images(delete) == images._library(shell_event(DeleteRowsEvent, TABLE, body))
    assert (images.fast_events, images.library_events) == (3, 0)
    assert write._RowsEvent__rows is None and write.packet.read_bytes == 7  # the packet was not touched


@pytest.mark.parametrize("spoil", ["partial", "minimal", "minimal_after", "read", "lenient", "buffer", "short",
                                   "long", "other_columns"])
def test_row_images_library_path_for_doubtful_events(spoil: str) -> None:
    images = RowImages(TABLE)
    body = _row(1, "a", "1.50") + _row(2, "b", "2.00")
    cls = {"partial": PartialUpdateRowsEvent, "minimal_after": UpdateRowsEvent}.get(spoil, WriteRowsEvent)
    event = shell_event(cls, TABLE, body)
    if spoil == "minimal":
        event.columns_present_bitmap = b"\x03"
    elif spoil == "minimal_after":
        event.columns_present_bitmap2 = b"\x05"
    elif spoil == "read":
        assert len(event.rows) == 2   # the library decoded it already
    elif spoil == "lenient":
        event._ignore_decode_errors = True
    elif spoil == "buffer":
        event.packet._BinLogPacketWrapper__data_buffer = b"\x01"
    elif spoil == "short":
        event.event_size -= 1         # the rows end one byte before the event's end
    elif spoil == "long":
        event.event_size += 1
    elif spoil == "other_columns":
        event.columns = [column("id", F.LONG), column("v", F.VARCHAR, max_length=40, charset="latin1"), TABLE[2]]
    assert images._fast(event) is None
    if spoil in ("partial", "minimal", "minimal_after", "buffer", "short", "long", "other_columns"):
        return  # bytes the library could not make sense of either: only the decision matters
    assert images.images(event) == [{"id": 1, "v": "a", "d": "1.50"}, {"id": 2, "v": "b", "d": "2.00"}]
    assert (images.fast_events, images.library_events) == (0, 1)


def test_row_images_adopt_an_equal_map_parsed_anew() -> None:
    images = RowImages(TABLE)
    again = [column("id", F.LONG), column("v", F.VARCHAR, max_length=40, charset="utf8mb4"),
             column("d", F.NEWDECIMAL, precision=12, decimals=2)]
    event = shell_event(WriteRowsEvent, again, _row(5, "z", "0.01"))
    assert images.images(event) == [{"id": 5, "v": "z", "d": "0.01"}]
    assert images.columns is again and images.fast_events == 1


def test_timestamp_day_arithmetic_matches_utcfromtimestamp() -> None:
    read = fast_rows._timestamp2_reader(0)
    rng = random.Random(3)
    for seconds in [1, -1, 2 ** 31 - 1, -2 ** 31] + [rng.randint(-2 ** 31, 2 ** 31 - 1) for _ in range(20000)]:
        expected = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=seconds)
        assert read(seconds.to_bytes(4, "big", signed=True), 0) == expected.isoformat(" ")
