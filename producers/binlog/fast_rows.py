"""Rows events -> wire values in one pass, for the common column types (the producer's fast path).

Why: python-mysql-replication decodes every value through several Python calls (`packet.read`,
`BitGet`, struct per column, `Decimal` and `datetime` objects) and `TableEncoder` then turns those
objects into wire values: about two thirds of the producer's time per row (19 us of it was the
library's decoding). `RowImages` reads the rows event's bytes directly and produces the wire
values `TableEncoder.encode_row` would produce (schemas/values.py) from the library's values,
with `binlog_fixes` installed.

How: `compile_table` generates one Python function per table map (its columns, in order) that
reads a whole rows event: null bitmap, then each present value by its type's layout. Only
integers the generator computed appear in the generated source; column names, labels and
encodings are passed in as variables. The layouts are MariaDB's (`Field::pack` per type, the
"rows event" and "date and time data type representation" pages of the MySQL internals manual)
as the library 1.0.17 reads them, including its quirks (signed fraction bytes, YEAR 0).

Fallback rule: correctness first. A table whose columns include any type or detail not listed
here takes the library path for all its rows: JSON (declared JSON or binary), BIT, SET, TIME,
TIME2, old DATETIME/TIMESTAMP, GEOMETRY, NEWDATE, VAR_STRING, a charset other than utf8mb4,
utf8mb3, latin1, ascii and binary, a nameless column, an ENUM without its labels. A rows event
takes the library path when it is anything but a plain WRITE/UPDATE/DELETE rows event with
every column present in every image (so MINIMAL/NOBLOB images and partial updates fall back),
when the library already started on it, when the stream ignores decode errors, and when
decoding fails in any way or does not end exactly at the event's end (the library then decodes,
or raises its own error).

Covered, with wire values identical to the library path: TINYINT..BIGINT signed and unsigned,
FLOAT, DOUBLE, DECIMAL, YEAR, DATE, DATETIME(0-6), TIMESTAMP(0-6), ENUM, CHAR, VARCHAR,
TINYTEXT..LONGTEXT, BINARY, VARBINARY, TINYBLOB..LONGBLOB; zero and invalid dates and datetimes
as `{"$zero_date": raw}` (what `binlog_fixes` + `TableEncoder` produce); NULL in any column.
"""

from __future__ import annotations

import binascii
import datetime
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE as F
from pymysqlreplication.row_event import DeleteRowsEvent, RowsEvent, UpdateRowsEvent, WriteRowsEvent

from producers.binlog.value_encoding import TableEncoder
from schemas.values import zero_date

log = logging.getLogger(__name__)

Decoder = Callable[[bytes, int, int], list[dict[str, Any]]]

# Charsets (the collation's prefix, as value_encoding reads it) whose text the fast path decodes.
TEXT_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8", "latin1", "ascii"})
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes of a packed decimal group of 0..9 digits
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_CACHE_LIMIT = 1 << 16  # distinct dates kept per cache before it starts over


class Unsupported(Exception):
    """The table has a column the fast path does not decode; the message names it."""


class _Fallback(Exception):
    """This event's bytes are not what the fast path can decode identically: use the library."""


def b64(value: bytes) -> str:
    # As value_encoding.b64: the library hands an empty binary value over as '', encoded as "".
    return binascii.b2a_base64(value, newline=False).decode("ascii") if value else ""


# -- dates -----------------------------------------------------------------------------------
class _DateTexts:
    """`YYYY-MM-DD` per packed date, or None where Python has no such date (a zero date), cached:
    a column's values usually fall on few days."""

    __slots__ = ("_texts", "_unpack")

    def __init__(self, unpack: Callable[[int], tuple[int, int, int]]) -> None:
        self._texts: dict[int, str | None] = {}
        self._unpack = unpack

    def get(self, key: int) -> str | None:
        try:
            return self._texts[key]
        except KeyError:
            pass
        year, month, day = self._unpack(key)
        try:
            text: str | None = datetime.date(year, month, day).isoformat()
        except ValueError:
            text = None
        if len(self._texts) >= _CACHE_LIMIT:
            self._texts.clear()
        self._texts[key] = text
        return text


# DATE: 3 bytes little-endian, year << 9 | month << 5 | day (binlog_fixes._read_date).
_DATE_KEYS = _DateTexts(lambda raw: (raw >> 9, (raw >> 5) & 0xF, raw & 0x1F))
# DATETIME2: bits 17.. of the 40-bit value, (year * 13 + month) << 5 | day (binlog_fixes._read_datetime2).
_DATETIME2_KEYS = _DateTexts(lambda key: ((key >> 5) // 13, (key >> 5) % 13, key & 0x1F))


def _date(raw: int) -> Any:
    text = _DATE_KEYS.get(raw)
    if text is not None:
        return text
    return zero_date(f"{raw >> 9:04d}-{(raw >> 5) & 0xF:02d}-{raw & 0x1F:02d}")


def _fraction_bytes(fsp: int) -> int:
    return (fsp + 1) // 2


def _read_micro(data: bytes, pos: int, fsp: int) -> int:
    """The fractional part as the library reads it: signed big-endian, odd fsp stored times 10."""
    size = _fraction_bytes(fsp)
    micro = int.from_bytes(data[pos:pos + size], "big", signed=True)
    if fsp % 2:
        micro = int(micro / 10)
    return micro * 10 ** (6 - fsp)


# "HH:MM:SS" per DATETIME2 time bits (hour << 12 | minute << 6 | second, 17 bits), valid times only.
_TIME_TEXTS: dict[int, str] = {}


def _time_text(bits: int) -> str | None:
    text = _TIME_TEXTS.get(bits)
    if text is None:
        hour, minute, second = bits >> 12, (bits >> 6) & 0x3F, bits & 0x3F
        if hour >= 24 or minute >= 60 or second >= 60:
            return None
        text = _TIME_TEXTS[bits] = f"{hour:02d}:{minute:02d}:{second:02d}"
    return text


def _datetime2_reader(fsp: int) -> Callable[[bytes, int], Any]:
    frac = _fraction_bytes(fsp)
    odd, scale = fsp % 2, 10 ** (6 - fsp)   # _read_micro, inlined: one call less per value
    get = _DATETIME2_KEYS.get

    def read(data: bytes, pos: int) -> Any:
        raw = int.from_bytes(data[pos:pos + 5], "big")
        if frac:
            micro = int.from_bytes(data[pos + 5:pos + 5 + frac], "big", signed=True)
            if odd:
                micro = int(micro / 10)
            micro *= scale
        else:
            micro = 0
        date = get((raw >> 17) & 0x3FFFFF)
        time = _time_text(raw & 0x1FFFF)
        if date is not None and time is not None and 0 <= micro <= 999_999:
            if fsp:
                return f"{date} {time}.{micro:06d}"
            return f"{date} {time}"
        # What binlog_fixes keeps for a value Python cannot represent: MariaDB's text, fsp digits.
        hour, minute, second = (raw >> 12) & 0x1F, (raw >> 6) & 0x3F, raw & 0x3F
        year_month = (raw >> 22) & 0x1FFFF
        text = (f"{year_month // 13:04d}-{year_month % 13:02d}-{(raw >> 17) & 0x1F:02d} "
                f"{hour:02d}:{minute:02d}:{second:02d}")
        if fsp:
            text += f".{micro // 10 ** (6 - fsp):0{fsp}d}"
        return zero_date(text)
    return read


_DAY_TEXTS: dict[int, str] = {}


def _timestamp2_reader(fsp: int) -> Callable[[bytes, int], Any]:
    frac = _fraction_bytes(fsp)
    zero = "0000-00-00 00:00:00" + ("." + "0" * fsp if fsp else "")

    def read(data: bytes, pos: int) -> Any:
        # The library: utcfromtimestamp(signed 4 bytes), microseconds replaced only when > 0.
        seconds = int.from_bytes(data[pos:pos + 4], "big", signed=True)
        micro = _read_micro(data, pos + 4, fsp) if frac else 0
        if micro > 999_999:
            raise _Fallback("TIMESTAMP fraction out of range")  # the library fails on it
        if micro < 0:
            micro = 0
        if seconds == 0 and micro == 0:
            return zero_date(zero)  # the library's epoch: MariaDB's zero TIMESTAMP
        days, rest = divmod(seconds, 86400)
        date = _DAY_TEXTS.get(days)
        if date is None:
            if len(_DAY_TEXTS) >= _CACHE_LIMIT:
                _DAY_TEXTS.clear()
            date = _DAY_TEXTS[days] = datetime.date.fromordinal(_EPOCH_ORDINAL + days).isoformat()
        hour, rest = divmod(rest, 3600)
        minute, second = divmod(rest, 60)
        if fsp:
            return f"{date} {hour:02d}:{minute:02d}:{second:02d}.{micro:06d}"
        return f"{date} {hour:02d}:{minute:02d}:{second:02d}"
    return read


# -- decimals --------------------------------------------------------------------------------
def decimal_size(precision: int, scale: int) -> int:
    intg = precision - scale
    return (intg // 9) * 4 + _DIG2BYTES[intg % 9] + (scale // 9) * 4 + _DIG2BYTES[scale % 9]


def _decimal_source(name: str, precision: int, scale: int) -> str:
    """Source of `name(data, pos) -> str`, the text `format(Decimal(...), "f")` gives.

    MariaDB's packed decimal: groups of 9 digits in 4 bytes big-endian, a shorter leading
    (integer) and trailing (fraction) group, negative values with every bit inverted, and the
    top bit flipped. Decoded as one big integer, then each group masked out; a group holding more
    digits than it may (never written by a server) falls back, where the library would print it.
    """
    intg = precision - scale
    groups: list[tuple[int, int]] = []  # (bytes, digits), most significant first
    if intg % 9:
        groups.append((_DIG2BYTES[intg % 9], intg % 9))
    groups += [(4, 9)] * (intg // 9)
    int_groups = len(groups)
    groups += [(4, 9)] * (scale // 9)
    if scale % 9:
        groups.append((_DIG2BYTES[scale % 9], scale % 9))
    size = sum(b for b, _ in groups)
    top = 1 << (8 * size - 1)
    invert = ((1 << (8 * size)) - 1) ^ top  # a negative value: every bit but the (already clear) top one
    lines = [f"def {name}(data, pos):",
             f"    x = int.from_bytes(data[pos:pos + {size}], 'big')",
             f"    if x & {top}:",
             f"        x ^= {top}",
             "        sign = ''",
             "    else:",
             f"        x ^= {invert}",
             "        sign = '-'"]
    shift = 8 * size
    for g, (nbytes, _) in enumerate(groups):
        shift -= 8 * nbytes
        mask = (1 << 8 * nbytes) - 1
        lines.append(f"    g{g} = (x >> {shift}) & {mask}" if shift else f"    g{g} = x & {mask}")
    checks = " or ".join(f"g{g} > {10 ** digits - 1}" for g, (_, digits) in enumerate(groups))
    lines += [f"    if {checks}:", "        raise FALLBACK('decimal digit group out of range')"]

    def value(first: int, last: int) -> str:
        terms, multiplier = [], 1
        for g in range(last - 1, first - 1, -1):
            terms.append(f"g{g} * {multiplier}" if multiplier > 1 else f"g{g}")
            multiplier *= 10 ** groups[g][1]
        return " + ".join(terms) or "0"

    if scale:
        lines.append(f'    return "%s%d.%0{scale}d" % (sign, {value(0, int_groups)}, {value(int_groups, len(groups))})')
    else:
        lines.append(f'    return "%s%d" % (sign, {value(0, int_groups)})')
    return "\n".join(lines) + "\n"


# -- the generated decoder -------------------------------------------------------------------
# struct formats of the fixed-width numbers: (signed, unsigned), as the library unpacks them.
_NUMBERS = {F.TINY: ("b", "B"), F.SHORT: ("<h", "<H"), F.LONG: ("<i", "<I"), F.LONGLONG: ("<q", "<Q"),
            F.FLOAT: ("<f", "<f"), F.DOUBLE: ("<d", "<d")}


def _charset(column: Any) -> str | None:
    collation = getattr(column, "collation_name", None)
    return collation.split("_", 1)[0] if collation else None


def _length_code(size: int) -> tuple[str, int]:
    """Expression of a `size`-byte little-endian length at `p`."""
    if size == 1:
        return "d[p]", 1
    if size == 2:
        return "d[p] | d[p + 1] << 8", 2
    return f"int.from_bytes(d[p:p + {size}], 'little')", size


def _column_code(i: int, column: Any, is_json: bool, ns: dict[str, Any], helpers: list[str]) -> list[str]:
    """Lines reading column `i`'s non-NULL value into `v{i}` and advancing `p` (helper functions'
    sources go to `helpers`, the objects they use to `ns`). Raises Unsupported."""
    t, v = column.type, f"v{i}"
    if is_json:
        raise Unsupported("a JSON column")
    if t in _NUMBERS:
        if t == F.TINY and column.unsigned:
            return [f"{v} = d[p]", "p += 1"]
        fmt = _NUMBERS[t][1 if column.unsigned else 0]
        ns[f"S{i}"] = struct.Struct(fmt).unpack_from
        return [f"{v} = S{i}(d, p)[0]", f"p += {struct.calcsize(fmt)}"]
    if t == F.INT24:
        signed = "False" if column.unsigned else "True"
        return [f"{v} = int.from_bytes(d[p:p + 3], 'little', signed={signed})", "p += 3"]
    if t == F.YEAR:
        return [f"{v} = d[p]", "p += 1", f"if {v}:", f"    {v} += 1900"]  # YEAR 0000 is byte 0, wire 0
    if t == F.NEWDECIMAL:
        helpers.append(_decimal_source(f"DEC{i}", column.precision, column.decimals))
        return [f"{v} = DEC{i}(d, p)", f"p += {decimal_size(column.precision, column.decimals)}"]
    if t == F.DATE:
        ns["DATE"] = _date
        return [f"{v} = DATE(d[p] | d[p + 1] << 8 | d[p + 2] << 16)", "p += 3"]
    if t == F.DATETIME2:
        ns[f"DT{i}"] = _datetime2_reader(column.fsp)
        return [f"{v} = DT{i}(d, p)", f"p += {5 + _fraction_bytes(column.fsp)}"]
    if t == F.TIMESTAMP2:
        ns[f"TS{i}"] = _timestamp2_reader(column.fsp)
        return [f"{v} = TS{i}(d, p)", f"p += {4 + _fraction_bytes(column.fsp)}"]
    if t == F.ENUM:
        if not column.enum_values or column.size not in (1, 2):
            raise Unsupported("an ENUM without its labels in the table map")
        ns[f"L{i}"] = tuple(column.enum_values)  # [""] + labels: index 0 is the invalid value ''
        length, size = _length_code(column.size)
        return [f"{v} = L{i}[{length}]", f"p += {size}"]
    if t in (F.VARCHAR, F.STRING, F.BLOB):
        if t == F.BLOB:
            length, size = _length_code(column.length_size)
        else:
            length, size = _length_code(2 if column.max_length > 255 else 1)
        lines = [f"n{i} = {length}", f"p += {size}"]
        charset = _charset(column)
        if charset == "binary":
            ns["B64"] = b64
            if t == F.STRING:  # BINARY(n): the binlog drops the trailing 0x00 padding; the value has n bytes
                lines.append(f"{v} = B64(d[p:p + n{i}].ljust({column.max_length}, b'\\0'))")
            else:
                lines.append(f"{v} = B64(d[p:p + n{i}])")
        elif charset in TEXT_CHARSETS and column.character_set_name is not None:
            # The very decode call of the library (binlog_fixes maps latin1 to MariaDB's latin1).
            ns[f"E{i}"] = RowsEvent.charset_to_encoding(column.character_set_name)
            lines.append(f"{v} = d[p:p + n{i}].decode(E{i})")
        else:
            raise Unsupported(f"character set {charset or column.character_set_name!r}")
        return lines + [f"p += n{i}"]
    raise Unsupported(f"column type {t}")


def table_source(columns: Sequence[Any], json_columns: frozenset[str] = frozenset()) -> tuple[str, dict[str, Any]]:
    """The generated source of a table's decoder and the namespace it runs in. Raises Unsupported.

    Only integers computed here appear in the source; names, labels and encodings are `ns` entries.
    """
    ns: dict[str, Any] = {"FALLBACK": _Fallback}
    names = [column.name for column in columns]
    if not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise Unsupported("a column without a name")
    null_bytes = (len(columns) + 7) // 8
    helpers: list[str] = []
    body: list[str] = []
    for i, column in enumerate(columns):
        try:
            lines = _column_code(i, column, column.name in json_columns, ns, helpers)
        except Unsupported as err:
            raise Unsupported(f"column {column.name!r}: {err}") from None
        ns[f"K{i}"] = column.name
        body += [f"if nulls & {1 << i}:", f"    v{i} = None", "else:"] + [f"    {line}" for line in lines]
    nulls = "d[p]" if null_bytes == 1 else f"int.from_bytes(d[p:p + {null_bytes}], 'little')"
    image = "{" + ", ".join(f"K{i}: v{i}" for i in range(len(columns))) + "}"
    decode = ["def decode(d, p, end):",
              "    images = []",
              "    append = images.append",
              "    while p < end:",
              f"        nulls = {nulls}",
              f"        p += {null_bytes}",
              *(f"        {line}" for line in body),
              f"        append({image})",
              "    if p != end:",
              "        raise FALLBACK('rows did not end at the end of the event')",
              "    return images", ""]
    return "\n".join(helpers + decode), ns


def compile_table(columns: Sequence[Any], json_columns: frozenset[str] = frozenset()) -> Decoder:
    """`decode(data, pos, end)`: the images (dicts of wire values) of the rows in `data[pos:end]`,
    two per row for an update. Raises Unsupported for a table the fast path does not cover."""
    source, ns = table_source(columns, json_columns)
    exec(compile(source, "<fast_rows>", "exec"), ns)  # noqa: S102 - integers and the names of ns only
    return ns["decode"]


# -- the capture's entry point ---------------------------------------------------------------
class RowImages:
    """Wire-value images of the rows events of one table map.

    `images(event)`: for a write or delete a list of row dicts, for an update a list of
    (before, after) pairs, in row order; from the fast decoder when it covers the table and the
    event, else from the library and `TableEncoder`. The counters say which path ran.
    """

    __slots__ = ("columns", "encoder", "decode", "reason", "fast_events", "library_events", "_full")

    def __init__(self, columns: Sequence[Any], json_columns: frozenset[str] = frozenset()) -> None:
        self.columns = columns
        self.encoder = TableEncoder(columns, json_columns)
        self.decode: Decoder | None
        self.reason = ""
        try:
            self.decode = compile_table(columns, json_columns)
        except Unsupported as err:
            self.decode, self.reason = None, str(err)
        self._full = bytes([0xFF] * (len(columns) // 8)) + (bytes([(1 << len(columns) % 8) - 1])
                                                              if len(columns) % 8 else b"")
        self.fast_events = 0
        self.library_events = 0

    def images(self, event: RowsEvent) -> list[Any]:
        if self.decode is not None:
            images = self._fast(event)
            if images is not None:
                self.fast_events += 1
                return images
        self.library_events += 1
        return self._library(event)

    def _fast(self, event: RowsEvent) -> list[Any] | None:
        cls = event.__class__
        if cls is not WriteRowsEvent and cls is not DeleteRowsEvent and cls is not UpdateRowsEvent:
            return None  # PartialUpdateRowsEvent, or a subclass we do not know
        if event.columns is not self.columns:
            if event.columns != self.columns:
                return None  # not the table map this decoder was built for
            self.columns = event.columns  # an equal map parsed anew (after a rotate)
        if (event.number_of_columns != len(self.columns) or event.columns_present_bitmap != self._full
                or (cls is UpdateRowsEvent and event.columns_present_bitmap2 != self._full)
                or event._RowsEvent__rows is not None or not event.complete or event._ignore_decode_errors):
            return None  # MINIMAL/NOBLOB images, the library already read the rows, or lenient decoding
        wrapper = event.packet
        if wrapper._BinLogPacketWrapper__data_buffer:
            return None
        raw = wrapper.packet
        start = raw._position
        try:
            images = self.decode(raw._data, start, start + event.event_size - wrapper.read_bytes)  # type: ignore[misc]
        except Exception as err:  # noqa: BLE001 - any surprise: the library decodes (or raises its own error)
            log.debug("fast path declined a rows event of %s.%s: %r", event.schema, event.table, err)
            return None
        if cls is UpdateRowsEvent:
            if len(images) % 2:
                return None
            return list(zip(images[0::2], images[1::2]))
        return images

    def _library(self, event: RowsEvent) -> list[Any]:
        encode_row = self.encoder.encode_row
        if isinstance(event, UpdateRowsEvent):
            return [(encode_row(row["before_values"], row["before_none_sources"]),
                     encode_row(row["after_values"], row["after_none_sources"])) for row in event.rows]
        return [encode_row(row["values"], row["none_sources"]) for row in event.rows]
