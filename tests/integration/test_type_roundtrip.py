"""Every MariaDB column type survives binlog -> wire -> database, and the snapshot path agrees.

One table holds every type with minimum, maximum, zero-date, NULL and awkward values, written by a
non-strict session (so it also holds the invalid ENUM value '' and invalid dates). Its binlog rows
go through TableEncoder and the wire codec into the real database sink (`DatabaseSink`, as
`cdcsync consumer --sink db` wires it) writing another region's table of the same definition,
which must then hold exactly the same values, with no dead letter; SnapshotEncoder must produce
exactly the wire values the binlog path produced.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pymysql
import pytest
from prometheus_client import CollectorRegistry
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from cdcsync.tools.dlq_reader import read_dead_letters
from common import metadata_tables
from common.kafka import TopicCreator, client_settings
from common.snapshot_encoding import SnapshotEncoder
from common.table_catalog import json_columns, snapshot_columns
from consumers.db.sink import DatabaseSink
from consumers.dlq import DeadLetterPublisher
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from producers.binlog import fixes as binlog_fixes, stream as binlog_stream
from producers.binlog.value_encoding import TableEncoder
from schemas import messages
from schemas.codec import encode
from schemas.config import PipelineConfig
from schemas.identifiers import quote_name
from schemas.topics import TopicNames
from tests.conftest import config_for_test, connect
from tests.support.kafka import CreatingTopicIds

pytestmark = pytest.mark.integration

ALL_BYTES = bytes(range(256))
COLUMNS: list[tuple[str, str]] = [
    ("id", "INT NOT NULL PRIMARY KEY"),
    ("ti", "TINYINT"), ("tiu", "TINYINT UNSIGNED"), ("si", "SMALLINT"), ("siu", "SMALLINT UNSIGNED"),
    ("mi", "MEDIUMINT"), ("miu", "MEDIUMINT UNSIGNED"), ("i", "INT"), ("iu", "INT UNSIGNED"),
    ("bi", "BIGINT"), ("biu", "BIGINT UNSIGNED"),
    ("dec_money", "DECIMAL(10,2)"), ("dec_wide", "DECIMAL(65,30)"), ("dec_frac", "DECIMAL(5,5)"),
    ("dec_int", "DECIMAL(20,0)"), ("dec_odd", "DECIMAL(13,4)"),
    ("f", "FLOAT"), ("dbl", "DOUBLE"),
    ("bit1", "BIT(1)"), ("bit10", "BIT(10)"), ("bit64", "BIT(64)"),
    ("d", "DATE"),
    *[(f"dt{n}", f"DATETIME({n})") for n in range(7)],
    ("ts0", "TIMESTAMP NULL DEFAULT NULL"), ("ts6", "TIMESTAMP(6) NULL DEFAULT NULL"),
    *[(f"tm{n}", f"TIME({n})") for n in range(7)],
    ("yr", "YEAR"),
    ("ch", "CHAR(10)"), ("vc", "VARCHAR(300)"), ("l1", "VARCHAR(20) CHARACTER SET latin1"),
    ("tt", "TINYTEXT"), ("tx", "TEXT"), ("mt", "MEDIUMTEXT"), ("lt", "LONGTEXT"),
    ("bn", "BINARY(8)"), ("vb", "VARBINARY(300)"), ("tb", "TINYBLOB"), ("bl", "BLOB"),
    ("mb", "MEDIUMBLOB"), ("lb", "LONGBLOB"),
    ("en", "ENUM('a','it''s','b\\\\c','é','new\\nline\x1a')"), ("st", "SET('x','y','z','ü')"),
    ("js", "JSON"),
    ("geo", "GEOMETRY"), ("pt", "POINT"), ("pg", "POLYGON"),
    ("uu", "UUID"), ("ip6", "INET6"), ("ip4", "INET4"),
]
NAMES = [name for name, _ in COLUMNS]
DDL = ", ".join(f"{quote_name(name)} {definition}" for name, definition in COLUMNS)


def hexlit(data: bytes) -> str:
    return f"X'{data.hex()}'"


def times(values: list[str]) -> dict[str, str]:
    return {f"tm{n}": f"'{value}'" for n, value in enumerate(values)}


def datetimes(date: str, fraction: str) -> dict[str, str]:
    return {f"dt{n}": f"'{date}{'.' + fraction[:n] if n else ''}'" for n in range(7)}


# Each row: column -> SQL expression. Absent columns are NULL. Values stay small: with blocking=False,
# MariaDB resets the dump connection on a rows event over ~128 KB (and the library then replays).
ROWS: list[dict[str, str]] = [
    {  # minimums
        "id": "1", "ti": "-128", "tiu": "0", "si": "-32768", "siu": "0", "mi": "-8388608", "miu": "0",
        "i": "-2147483648", "iu": "0", "bi": "-9223372036854775808", "biu": "0",
        "dec_money": "-99999999.99", "dec_wide": "-" + "9" * 35 + "." + "9" * 30, "dec_frac": "-0.99999",
        "dec_int": "-" + "9" * 20, "dec_odd": "-999999999.9999",
        "f": "-3.40282e38", "dbl": "-1.7976931348623157e308", "bit1": "b'0'", "bit10": "b'0'", "bit64": "b'0'",
        "d": "'0001-01-01'", **datetimes("0001-01-01 00:00:00", "000001"),
        "ts0": "'1970-01-01 00:00:01'", "ts6": "'1970-01-01 00:00:01.000001'",
        **times(["-838:59:59", "-838:59:59.9", "-838:59:59.99", "-838:59:59.999", "-838:59:59.9999",
                 "-838:59:59.99999", "-838:59:59.999999"]),
        "yr": "1901", "ch": "''", "vc": "''", "l1": "''", "tt": "''", "tx": "''", "mt": "''", "lt": "''",
        "bn": hexlit(bytes(8)), "vb": "X''", "tb": "X''", "bl": "X''", "mb": "X''", "lb": "X''",
        "en": "'a'", "st": "'x'", "js": "'{}'",
        "geo": "ST_GeomFromText('POINT(0 0)', 0)", "pt": "ST_GeomFromText('POINT(-180 -90)', 4326)",
        "pg": "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))', 0)",
        "uu": "'00000000-0000-0000-0000-000000000000'", "ip6": "'::'", "ip4": "'0.0.0.0'",
    },
    {  # maximums, all 256 byte values, non-ASCII text
        "id": "2", "ti": "127", "tiu": "255", "si": "32767", "siu": "65535", "mi": "8388607", "miu": "16777215",
        "i": "2147483647", "iu": "4294967295", "bi": "9223372036854775807", "biu": "18446744073709551615",
        "dec_money": "99999999.99", "dec_wide": "9" * 35 + "." + "9" * 30, "dec_frac": "0.99999",
        "dec_int": "9" * 20, "dec_odd": "999999999.9999",
        "f": "3.40282e38", "dbl": "1.7976931348623157e308",
        "bit1": "b'1'", "bit10": "b'1111111111'", "bit64": "b'" + "1" * 64 + "'",
        "d": "'9999-12-31'", **datetimes("9999-12-31 23:59:59", "999999"),
        "ts0": "'2038-01-19 03:14:07'", "ts6": "'2038-01-19 03:14:07.999999'",
        **times(["838:59:59", "838:59:59.9", "838:59:59.99", "838:59:59.999", "838:59:59.9999",
                 "838:59:59.99999", "838:59:59.999999"]),
        "yr": "2155", "ch": "'ÄÖÜß😀abcde'", "vc": "'" + "日本語😀é" * 50 + "'", "l1": hexlit(bytes(range(0x80, 0x94))),
        "tt": "'😀" + "x" * 60 + "'", "tx": "'" + "ü😀" * 100 + "'", "mt": "'" + "ß" * 300 + "'",
        "lt": "'" + "😀" * 300 + "'",
        "bn": hexlit(bytes(range(248, 256))), "vb": hexlit(ALL_BYTES), "tb": hexlit(ALL_BYTES[1:]),
        "bl": hexlit(ALL_BYTES * 2), "mb": hexlit(ALL_BYTES * 3), "lb": hexlit(ALL_BYTES[::-1] * 4),
        "en": "'é'", "st": "'x,y,z,ü'",
        "js": """'{"a":{"b":[1,2.5,"é","😀",null,true,false]},"k":"v\\\\"q","n":-12345678901234}'""",
        "geo": "ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(1 1,2 1,2 2,1 1))', 4326)",
        "pt": "ST_GeomFromText('POINT(1.5 -2.25)', 0)",
        "pg": "ST_GeomFromText('POLYGON((-1 -1,1 -1,1 1,-1 -1))', 4326)",
        "uu": "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "ip6": "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'",
        "ip4": "'255.255.255.255'",
    },
    {  # zero and partly zero dates, an invalid date, YEAR 0000, invalid ENUM, empty SET
        "id": "3", "d": "'0000-00-00'", "dt0": "'0000-00-00 00:00:00'", "dt1": "'2024-05-00 10:11:12.5'",
        "dt2": "'2024-00-15 00:00:00.25'", "dt3": "'0000-00-00 00:00:00.000'", "dt4": "'2024-02-30 12:00:00.0001'",
        "dt5": "'0000-01-01 00:00:00.00001'", "dt6": "'2024-05-00 10:11:12.500000'",
        "ts0": "'0000-00-00 00:00:00'", "ts6": "'0000-00-00 00:00:00.000000'",
        **times(["00:00:00", "-00:00:00.1", "-00:00:01.01", "-00:00:00.001", "-00:00:01.0001",
                 "-00:00:00.00001", "-00:00:00.000001"]),
        "yr": "0", "en": "'not a label'", "st": "''", "ch": "'trail  '", "vc": "'trail  '",
        "dec_money": "0", "dec_wide": "0", "dec_frac": "0.00001", "dec_int": "0", "dec_odd": "-0.0001",
        "f": "0", "dbl": "0", "bit10": "b'1000000001'", "bn": hexlit(b"ab"), "vb": "X'00'", "tb": "X'00ff'",
        "js": """'[1,"two",{"3":[]}]'""", "geo": "ST_GeomFromText('LINESTRING(0 0,1 1,2 0)', 0)",
        "uu": "'123e4567-e89b-12d3-a456-426614174000'", "ip6": "'2001:db8::1'", "ip4": "'10.0.0.1'",
    },
    {"id": "4"},  # NULL everywhere
    {  # negative fractional times, small decimals, control characters
        "id": "5", **times(["-01:00:00", "-00:00:00.5", "-00:00:01.01", "-12:34:56.789", "-100:00:00.0001",
                            "-00:00:00.00001", "-838:59:59.000001"]),
        **datetimes("2024-02-29 12:34:56", "123456"), "d": "'2024-02-29'",
        "ts0": "'2024-06-30 23:59:59'", "ts6": "'2024-06-30 23:59:59.5'",
        "dec_money": "-0.01", "dec_wide": "0." + "0" * 29 + "1", "dec_frac": "-0.00001", "dec_int": "1",
        "dec_odd": "1.5", "f": "0.1", "dbl": "0.1", "bit1": "b'1'", "bit64": "b'1" + "0" * 63 + "'",
        "yr": "2000", "ch": "'é'", "vc": "'a\\0b\\n\\t\"''\\\\'", "l1": "X'8141e98f9d'", "tx": "'line\\r\\nbreak'",
        "bn": hexlit(b"\x00\xff\x80 ab\x00\x00"), "vb": hexlit(b"\x00"), "en": "'it''s'", "st": "'ü,x'",
        "js": """'{"nested":{"deep":{"deeper":[{"x":1}]}},"unicode":"日本語","e":""}'""",
        "geo": "ST_GeomFromText('POINT(3 4)', 4326)", "pt": "ST_GeomFromText('POINT(5 6)', 4326)",
        "pg": "ST_GeomFromText('POLYGON((0 0,2 0,2 2,0 0))', 0)",
        "uu": "'6ba7b810-9dad-41d1-80b4-00c04fd430c8'", "ip6": "'::ffff:1.2.3.4'", "ip4": "'192.168.1.254'",
    },
    {"id": "6", "i": "6", "vc": "'to be deleted'", "d": "'2024-05-00'", "st": "''", "en": "'b\\\\c'"},
]
UPDATE = ("UPDATE t1 SET tm6 = '-00:00:00.000001', d = '2024-05-00', st = '', en = 'zz', bit64 = b'1010',"
          " vb = X'00ff', geo = ST_GeomFromText('POINT(7 8)', 0), js = '{\"u\":1}', dt3 = '0000-00-00 00:00:00.000',"
          " biu = 18446744073709551615, dec_wide = -1.5, ts6 = '0000-00-00' WHERE id = 5")


def compare_expression(name: str, definition: str) -> str:
    """An exact, comparable text of a stored value (NULL stays NULL)."""
    q = quote_name(name)
    kind = definition.split("(")[0].split(" ")[0].upper()
    if kind in ("FLOAT", "DOUBLE"):
        return f"CAST({q} AS DOUBLE)"  # the server prints doubles with round-trip precision
    if kind == "BIT":
        return f"CAST({q} AS UNSIGNED)"
    if kind in ("ENUM", "SET"):
        return f"CONCAT({q} + 0, ':', HEX({q}))"  # the index tells the invalid '' from a label
    if kind in ("GEOMETRY", "POINT", "POLYGON"):
        return f"CONCAT(ST_SRID({q}), ':', HEX(ST_AsWKB({q})), ':', HEX({q}))"
    # JSON too: the rows hold compact JSON, the text orjson writes back (the wire has no formatting).
    if kind in ("CHAR", "VARCHAR", "TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT", "JSON", "BINARY",
                "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB"):
        return f"HEX({q})"
    return f"CAST({q} AS CHAR)"  # integers, DECIMAL, temporal types (zero dates as printed), YEAR, UUID, INET


COMPARE = ", ".join(compare_expression(name, definition) for name, definition in COLUMNS)


def stored_rows(conn: pymysql.Connection, table: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COMPARE} FROM {table} ORDER BY id")
        return list(cur.fetchall())


def execute(conn: pymysql.Connection, sql: str, params: Any = None) -> None:
    with conn.cursor() as cur:
        cur.execute(sql, params)


def wire(row: dict[str, Any]) -> dict[str, Any]:
    """Through the wire: orjson refuses anything that is not already a JSON value."""
    return orjson.loads(orjson.dumps(row, option=orjson.OPT_PASSTHROUGH_DATETIME))


def read_changes(config: PipelineConfig, db: str, start: str, server_id: int) -> list[tuple[str, dict, dict]]:
    """(kind, before, after) of every row change in t1 since `start`, as wire values."""
    stream = BinLogStreamReader(connection_settings=binlog_stream.connection_settings(config.region("eu").mysql),
                                server_id=server_id, is_mariadb=True,
                                blocking=False, auto_position=start, only_schemas=[db], only_tables=["t1"],
                                only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent])
    ctl = connect(config, "eu")
    changes = []
    try:
        for event in stream:
            # On a lost connection the library silently restarts from `start`; stop the replay.
            if len(changes) > 4 * len(ROWS):
                break
            encoder = TableEncoder(event.columns, json_columns(ctl, db, event.table))
            changes.append(("types", encoder.types, {}))
            for row in event.rows:
                if isinstance(event, WriteRowsEvent):
                    changes.append(("insert", {}, wire(encoder.encode_row(row["values"], row["none_sources"]))))
                elif isinstance(event, UpdateRowsEvent):
                    changes.append(("update",
                                    wire(encoder.encode_row(row["before_values"], row["before_none_sources"])),
                                    wire(encoder.encode_row(row["after_values"], row["after_none_sources"]))))
                else:
                    changes.append(("delete", wire(encoder.encode_row(row["values"], row["none_sources"])), {}))
    finally:
        stream.close()
        ctl.close()
    return changes


def sink_records(config: PipelineConfig, db: str, changes: list[tuple[str, dict, dict]],
                 types: dict[str, str], table: str = "t1") -> list[SourceRecord]:
    """The changes as eu's producer publishes them (one transaction each), as the sink consumes them."""
    topic = TopicNames.of(config).changes("eu", db, table)
    out = []
    for offset, (kind, before, after) in enumerate(c for c in changes if c[0] != "types"):
        txn = messages.TxnInfo("eu", "eu", 1, f"1-1-{offset + 1}", f"t{offset}", 1_700_000_000_000_000 + offset)
        pk = {"id": (after or before)["id"]}
        message = messages.change(txn, "bin.000001", 4 + offset, db, table, kind, pk, before or None,
                                  after or None, types)
        message["txn_last"] = True
        out.append(SourceRecord.from_message(topic, 0, offset, messages.message_key(message, None, b""),
                                             encode(message)))
    return out


def database_sink(config: PipelineConfig, region: str) -> DatabaseSink:
    """The database sink of `region`, as `cdcsync consumer --sink db` wires it (its DLQ on the broker)."""
    kafka = config.kafka_for(region)
    dlq_topic = TopicNames.of(config).dlq(region)
    TopicCreator(kafka).ensure(dlq_topic)
    with connect(config, region) as conn:
        metadata_tables.ensure(conn, config.meta_db)
    return DatabaseSink(config, region, DeadLetterPublisher(client_settings(kafka), dlq_topic, region=region,
                                                            sink="db"), SinkMetrics(region, CollectorRegistry()),
                        topic_ids=CreatingTopicIds(config.kafka_for(region)))


def utc(conn: pymysql.Connection) -> pymysql.Connection:
    execute(conn, "SET SESSION time_zone = '+00:00'")
    return conn


@pytest.fixture
def db(sandbox_config: PipelineConfig, unique: str):
    """The database `types_<unique>` in eu and us."""
    name = f"types_{unique}"
    conns = [connect(sandbox_config, region) for region in ("eu", "us")]
    for conn in conns:
        execute(conn, f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        for conn in conns:
            execute(conn, f"DROP DATABASE {name}")
            conn.close()


@pytest.fixture
def config(sandbox_config: PipelineConfig, db: str, unique: str, tmp_path) -> PipelineConfig:
    # dead_letter: values a narrower target column cannot hold are dead-lettered here, not waited for
    return config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                           regions=("eu", "us"), sink={"schema_mismatch": "dead_letter"})


def test_every_type_roundtrips_through_binlog_wire_the_database_sink_and_snapshot(
        config: PipelineConfig, db: str, unique: str) -> None:
    binlog_fixes.install()
    source = connect(config, "eu", db)
    target = utc(connect(config, "us", db))
    execute(source, "SET SESSION time_zone = '+00:00', sql_mode = 'ALLOW_INVALID_DATES'")   # non-strict
    execute(source, f"CREATE TABLE t1 ({DDL})")
    execute(target, f"CREATE TABLE t1 ({DDL})")
    with source.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        (start,) = cur.fetchone()
    for row in ROWS:
        execute(source, f"INSERT INTO t1 ({', '.join(map(quote_name, row))}) VALUES ({', '.join(row.values())})")
    inserted = stored_rows(source, "t1")
    execute(source, UPDATE)
    execute(source, "DELETE FROM t1 WHERE id = 6")
    assert stored_rows(source, "t1") != inserted[:5]  # the update changed something

    changes = read_changes(config, db, start, server_id=100_000 + int(unique, 16) % 2**30)
    types = changes[0][1]
    assert [kind for kind, _, _ in changes if kind != "types"] == ["insert"] * 6 + ["update", "delete"]

    # (a) binlog -> wire -> the database sink into us's t1 stores exactly what eu's t1 holds, after
    # each step: the invalid ENUM value '' (rows 3 and 5) included, and nothing is dead-lettered.
    records = iter(sink_records(config, db, changes, types))
    sink = database_sink(config, "us")
    state: dict[int, dict] = {}
    for kind, before, after in changes:
        if kind == "types":
            assert before == types  # one table version throughout
            continue
        if kind == "insert":
            state[after["id"]] = after
        else:
            assert before == state[before["id"]]  # before images round-trip too
            state.pop(before["id"])
            if kind == "update":
                state[after["id"]] = after
        sink.write_batch([next(records)])
        if kind == "insert" and after["id"] == 6:
            assert stored_rows(target, "t1") == inserted
    sink.close()
    assert stored_rows(target, "t1") == stored_rows(source, "t1")
    assert read_dead_letters(config, "us") == []

    # The wire values themselves, for the cases the contract singles out.
    zero, misc, nulls, maxima = state[3], state[5], state[4], state[2]
    assert zero["d"] == {"$zero_date": "0000-00-00"}
    assert zero["dt1"] == {"$zero_date": "2024-05-00 10:11:12.5"}
    assert zero["dt4"] == {"$zero_date": "2024-02-30 12:00:00.0001"}
    assert zero["dt6"] == {"$zero_date": "2024-05-00 10:11:12.500000"}
    assert zero["ts0"] == {"$zero_date": "0000-00-00 00:00:00"}
    assert zero["ts6"] == {"$zero_date": "0000-00-00 00:00:00.000000"}
    assert (zero["yr"], zero["en"], zero["st"]) == (0, "", [])
    assert zero["bn"] == base64.b64encode(b"ab".ljust(8, b"\0")).decode()  # BINARY keeps its padding
    assert zero["tm6"] == "-00:00:00.000001"
    assert (misc["tm2"], misc["tm6"]) == ("-00:00:01.010000", "-00:00:00.000001")
    assert misc["dec_wide"] == "-1.500000000000000000000000000000"
    assert misc["geo"] == {"srid": 0, "wkb": base64.b64encode(struct.pack("<BIdd", 1, 1, 7, 8)).decode()}
    assert misc["ts6"] == {"$zero_date": "0000-00-00 00:00:00.000000"}
    assert (maxima["biu"], maxima["bit64"], maxima["dec_frac"]) == (2**64 - 1, 2**64 - 1, "0.99999")
    assert maxima["dt3"] == "9999-12-31 23:59:59.999000" and maxima["ts0"] == "2038-01-19 03:14:07"
    assert state[1]["tm6"] == "-838:59:59.999999"
    assert state[1]["f"] == struct.unpack("<f", struct.pack("<f", -3.40282e38))[0]  # the exact float32
    assert maxima["js"]["a"]["b"] == [1, 2.5, "é", "😀", None, True, False]
    assert all(value is None for name, value in nulls.items() if name != "id")
    assert types["biu"] == "bigint unsigned" and types["js"] == "json" and types["ch"] == "char(10)"

    # (b) the snapshot path yields the same types and the same wire values.
    execute(source, "SET SESSION time_zone = '+00:00'")
    encoder = SnapshotEncoder(snapshot_columns(source, db, "t1"))
    assert encoder.types == types
    with source.cursor() as cur:
        cur.execute(f"SELECT {encoder.select_list} FROM t1 ORDER BY id")
        snapshot = [wire(encoder.encode_row(row)) for row in cur.fetchall()]
    assert snapshot == [state[key] for key in sorted(state)]
    source.close()
    target.close()


def test_catalog_reports_json_columns_and_primary_key(sandbox_config: PipelineConfig, db: str) -> None:
    conn = connect(sandbox_config, "eu", db)
    execute(conn, "CREATE TABLE t (a INT, `we``ird` JSON, b LONGTEXT, c LONGTEXT CHECK (json_valid(c)),"
                  " d INT, PRIMARY KEY (d, a))")
    assert json_columns(conn, db, "t") == {"we`ird", "c"}
    table = snapshot_columns(conn, db, "t")
    assert table.primary_key == ("d", "a") and table.json_columns == {"we`ird", "c"}
    assert [(c.name, c.data_type, c.ordinal) for c in table.columns] == [
        ("a", "int", 1), ("we`ird", "longtext", 2), ("b", "longtext", 3), ("c", "longtext", 4), ("d", "int", 5)]
    conn.close()


def test_an_invalid_enum_row_is_written_and_the_rest_of_it_stays_strict(config: PipelineConfig, db: str) -> None:
    """The sink writes a row holding the invalid ENUM value '' without strict mode, for that row
    only: another value of the row that the target cannot hold (us's `v` is narrower than eu's) is
    still refused and dead-lettered, never truncated, and the rows after it are strict again."""
    with connect(config, "us", db) as conn:
        execute(conn, "CREATE TABLE t1 (id INT PRIMARY KEY, en ENUM('a','b') NOT NULL, v VARCHAR(4))")
    types = {"id": "int", "en": "enum('a','b')", "v": "varchar(16)"}
    rows = [{"id": 1, "en": "", "v": "ok"}, {"id": 2, "en": "", "v": "too long"}, {"id": 3, "en": "a", "v": "long!"},
            {"id": 4, "en": "", "v": None}, {"id": 5, "en": "b", "v": "much too long"}]
    sink = database_sink(config, "us")
    try:
        sink.write_batch(sink_records(config, db, [("insert", {}, row) for row in rows], types))
    finally:
        sink.close()
    with connect(config, "us", db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, en + 0, en, v FROM t1 ORDER BY id")
        assert cur.fetchall() == ((1, 0, "", "ok"), (4, 0, "", None))
    letters = sorted(read_dead_letters(config, "us"), key=lambda e: e.source_offset)
    assert [(e.source_offset, e.kind) for e in letters] == [(1, "constraint"), (2, "constraint"), (4, "constraint")]
    assert "column 'v'" in letters[0].error and "column 'v'" in letters[2].error, letters


def test_region_add_copies_the_invalid_enum_value_and_stays_strict(config: PipelineConfig, db: str) -> None:
    """`cdcsync region add`'s copy writes rows as the sink does: the invalid ENUM value '' a
    non-strict source stored is copied, a value the new region cannot hold is still refused."""
    from cdcsync.tools.regions.seed import applier_session, copy_snapshot

    with connect(config, "eu", db) as conn:
        execute(conn, "SET SESSION sql_mode = ''")   # non-strict: an unknown label is stored as ''
        execute(conn, "CREATE TABLE t1 (id INT PRIMARY KEY, en ENUM('a','b') NOT NULL, v VARCHAR(16))")
        execute(conn, "INSERT INTO t1 VALUES (1, 'zz', 'x'), (2, 'a', 'y'), (3, 'zz', NULL)")
    with connect(config, "us", db) as conn:
        execute(conn, "CREATE TABLE t1 (id INT PRIMARY KEY, en ENUM('a','b') NOT NULL, v VARCHAR(16))")
    def copy_eu_to_us() -> Any:
        target = applier_session(config, "us")
        try:
            return copy_snapshot(config, "eu", target, tables=[(db, "t1")])
        finally:
            target.close()
    report = copy_eu_to_us()
    assert report.rows == {f"{db}.t1": 3}
    with connect(config, "us", db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, en + 0, v FROM t1 ORDER BY id")
        assert cur.fetchall() == ((1, 0, "x"), (2, 1, "y"), (3, 0, None))
        execute(conn, "DELETE FROM t1")
        execute(conn, "ALTER TABLE t1 MODIFY v VARCHAR(1)")
    with connect(config, "eu", db) as conn:
        execute(conn, "UPDATE t1 SET v = 'too long' WHERE id = 1")
    with pytest.raises(pymysql.err.DataError, match="column 'v'"):
        copy_eu_to_us()
