"""Values a server accepts but that are not valid text or dates reach the other region's database
byte for byte through the real producer and database sink: bytes that are invalid UTF-8 in a latin1
column and in BINARY/BLOB columns, zero and invalid dates written in non-strict mode (issue 11's
bad-input matrix). Decoding edge cases are covered in depth, without the pipeline, by
test_type_roundtrip.py and test_fast_rows.py."""

from __future__ import annotations

import pytest

from cdcsync.tools.clock_init import init_region
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us")
INVALID_UTF8 = bytes([0xC3, 0x28, 0xA0, 0xA1, 0xE2, 0x28, 0xA1, 0xF0, 0x28, 0x8C, 0xBC, 0xFF, 0xFE, 0x80, 0x00])
LATIN1 = bytes(range(0x80, 0x100))   # every high byte; 0x81, 0x8D, 0x8F, 0x90, 0x9D are undefined in cp1252
SHOW = "SELECT id, HEX(l1), HEX(bn), HEX(bl), CAST(d AS CHAR), CAST(dt AS CHAR) FROM {db}.t ORDER BY id"


def test_invalid_utf8_bytes_and_zero_dates_replicate_byte_for_byte(sandbox_config, unique, tmp_path) -> None:
    db = f"bad_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=REGIONS, sink={"batch_max_ms": 50})
    create_database(config, REGIONS, db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, "
                    "l1 VARCHAR(200) CHARACTER SET latin1, bn BINARY(16), bl BLOB, d DATE, dt DATETIME(6))")
    for region in REGIONS:
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    with ProducerProcess(path, "eu", tmp_path / "p-eu.log"), SinkProcess(path, "us", "db", tmp_path / "db-us.log"):
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")   # non-strict: dates stored as written
            rows = [(1, LATIN1[:100], INVALID_UTF8, INVALID_UTF8 * 3, "0000-00-00", "2024-02-30 12:00:00.5"),
                    (2, LATIN1[100:], INVALID_UTF8[::-1], bytes(range(256)), "2024-05-00", "0000-00-00 00:00:00"),
                    (3, b"", b"", b"", None, None)]
            cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)", rows)
            cur.execute("UPDATE t SET l1 = %s, bl = %s, d = '0000-01-00' WHERE id = 3", (LATIN1[::-1][:50], LATIN1))
            cur.execute(SHOW.format(db=db))
            expected = cur.fetchall()
        assert expected[0][4:] == ("0000-00-00", "2024-02-30 12:00:00.500000")   # the server kept what it accepted

        def replicated() -> bool:
            with connect(config, "us", db) as conn, conn.cursor() as cur:
                cur.execute(SHOW.format(db=db))
                return cur.fetchall() == expected
        wait_until(replicated, timeout=60, what="the rows in us, byte for byte")
