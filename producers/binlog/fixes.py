"""Fixes for value decoding bugs in python-mysql-replication 1.0.17 (pinned in pyproject.toml).

`install()` replaces private readers of `RowsEvent`. Each replacement consumes exactly the bytes
the original consumed, so only the decoded value changes. Layouts: MySQL's
`my_time_packed_from_binary` / `TIME_from_longlong_*_packed` (sql-common/my_time.cc) and the
"date and time data type representation" page of the MySQL internals manual.
"""

from __future__ import annotations

import codecs
import datetime

from pymysqlreplication.row_event import RowsEvent

_TIMEF_INT_OFS = 0x800000
_TIMEF_OFS = 0x800000000000


class ZeroDate(str):
    """A DATE/DATETIME that Python cannot represent (zero, partly zero, or an invalid date stored
    under ALLOW_INVALID_DATES), as MariaDB prints it: `0000-00-00`, `2024-05-00 10:11:12.500`."""

    __slots__ = ()


def _fraction(micro: int, fsp: int) -> str:
    # MariaDB prints exactly `fsp` fractional digits.
    return f".{micro // 10 ** (6 - fsp):0{fsp}d}" if fsp else ""


# The original ignores the int part's borrow for negative fractions: -838:59:59.000001 read as -838:59:59.999999.
def _read_time2(self: RowsEvent, column) -> datetime.timedelta:
    fsp = column.fsp
    if fsp >= 5:
        packed = int.from_bytes(self.packet.read(6), "big") - _TIMEF_OFS
    else:
        intpart = int.from_bytes(self.packet.read(3), "big") - _TIMEF_INT_OFS
        frac = 0
        if fsp:
            size = (fsp + 1) // 2
            frac = int.from_bytes(self.packet.read(size), "big")
            if intpart < 0 and frac:
                intpart += 1
                frac -= 1 << (8 * size)
            frac *= 10000 if size == 1 else 100
        packed = (intpart << 24) + frac
    magnitude = abs(packed)
    hms, micro = magnitude >> 24, magnitude & 0xFFFFFF
    value = datetime.timedelta(hours=(hms >> 12) & 0x3FF, minutes=(hms >> 6) & 0x3F,
                               seconds=hms & 0x3F, microseconds=micro)
    return -value if packed < 0 else value


# The original returns None for zero and partly zero dates, losing the stored value.
def _read_date(self: RowsEvent) -> datetime.date | ZeroDate:
    raw = self.packet.read_uint24()
    year, month, day = raw >> 9, (raw >> 5) & 0xF, raw & 0x1F
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return ZeroDate(f"{year:04d}-{month:02d}-{day:02d}")


# The original returns None for zero and partly zero dates (old, pre-5.6 DATETIME layout).
def _read_datetime(self: RowsEvent) -> datetime.datetime | ZeroDate:
    raw = self.packet.read_uint64()
    date, time = divmod(raw, 1000000)
    year, month, day = date // 10000, date // 100 % 100, date % 100
    hour, minute, second = time // 10000, time // 100 % 100, time % 100
    try:
        return datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return ZeroDate(f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}")


# The original returns None for zero and partly zero dates, losing the stored value.
def _read_datetime2(self: RowsEvent, column) -> datetime.datetime | ZeroDate:
    raw = int.from_bytes(self.packet.read(5), "big")
    year_month = (raw >> 22) & 0x1FFFF
    year, month, day = year_month // 13, year_month % 13, (raw >> 17) & 0x1F
    hour, minute, second = (raw >> 12) & 0x1F, (raw >> 6) & 0x3F, raw & 0x3F
    micro = self._RowsEvent__read_fsp(column)
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        return ZeroDate(f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
                        + _fraction(micro, column.fsp))


# MariaDB's latin1 is cp1252 with its 5 undefined bytes mapped to U+0081, U+008D, ... (what the
# server itself converts them to); Python's cp1252 cannot decode them.
_LATIN1 = "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in range(256))
_LATIN1_ENCODING = codecs.charmap_build(_LATIN1)
_LATIN1_CODEC = codecs.CodecInfo(
    name="cdcsync_mariadb_latin1",
    encode=lambda text, errors="strict": codecs.charmap_encode(text, errors, _LATIN1_ENCODING),
    decode=lambda data, errors="strict": codecs.charmap_decode(data, errors, _LATIN1))


def _find_codec(name: str) -> codecs.CodecInfo | None:
    return _LATIN1_CODEC if name == _LATIN1_CODEC.name else None


# The original decodes latin1 as Python's cp1252, which fails the whole event on 0x81, 0x8D, 0x8F, 0x90, 0x9D.
def _charset_to_encoding(name: str) -> str:
    encoding = _original_charset_to_encoding(name)
    return _LATIN1_CODEC.name if encoding == "cp1252" else encoding


_original_charset_to_encoding = RowsEvent.charset_to_encoding
_PATCHES = {
    "_RowsEvent__read_time2": _read_time2,
    "_RowsEvent__read_date": _read_date,
    "_RowsEvent__read_datetime": _read_datetime,
    "_RowsEvent__read_datetime2": _read_datetime2,
    "charset_to_encoding": staticmethod(_charset_to_encoding),
}
_installed = False


def install() -> None:
    """Patch `RowsEvent` in place. Idempotent; call before reading any rows event."""
    global _installed
    if _installed:
        return
    codecs.register(_find_codec)
    for name, fix in _PATCHES.items():
        setattr(RowsEvent, name, fix)
    _installed = True
