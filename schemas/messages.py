"""Building the wire messages of schemas/events.py as plain dicts (the producer's hot path).

Kafka key: the canonical PK (its values as a JSON list; a text column whose collation folds by its
fold, schemas/key_fold.py), so every change of a row, in any spelling, lands on one partition, in
commit order. With `topic_mode = "per_region"` the key is prefixed by `db.table:`.
Headers: `cdcsync-kind` (change|ddl), `cdcsync-schema-version`, `cdcsync-origin`.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.version import SCHEMA_VERSION

_VERSION_HEADER = ("cdcsync-schema-version", str(SCHEMA_VERSION).encode())


def headers(kind: str, origin: str) -> list[tuple[str, bytes]]:
    return [("cdcsync-kind", kind.encode()), _VERSION_HEADER, ("cdcsync-origin", origin.encode())]


def row_key(pk_values: list[Any], key_prefix: bytes) -> bytes:
    return key_prefix + orjson.dumps(pk_values)


class TxnInfo:
    """Per-transaction fields shared by every message of the transaction."""

    __slots__ = ("region", "origin", "server_id", "gtid", "txn_id", "ts_us", "index", "epoch")

    def __init__(self, region: str, origin: str, server_id: int, gtid: str | None, txn_id: str,
                 ts_us: int, epoch: str | None = None) -> None:
        self.region = region
        self.epoch = epoch
        self.origin = origin
        self.server_id = server_id
        self.gtid = gtid
        self.txn_id = txn_id
        self.ts_us = ts_us
        self.index = 0


def change(txn: TxnInfo, file: str, pos: int, db: str, table: str, op: str, pk: dict[str, Any],
           before: dict[str, Any] | None, after: dict[str, Any] | None, types: dict[str, str]) -> dict[str, Any]:
    index = txn.index
    txn.index = index + 1
    return {
        "schema_version": SCHEMA_VERSION, "kind": "change", "region": txn.region, "origin": txn.origin,
        "server_id": txn.server_id, "gtid": txn.gtid, "binlog_file": file, "binlog_pos": pos,
        "txn_id": txn.txn_id, "ts_us": txn.ts_us, "db": db, "table": table, "txn_index": index,
        "txn_last": False, "op": op, "pk": pk, "before": before, "after": after, "types": types,
        "vclock": None, "heads": None, "epoch": txn.epoch, "version_origin": None,
    }


def ddl(txn: TxnInfo, file: str, pos: int, db: str, table: str | None, statement: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION, "kind": "ddl", "region": txn.region, "origin": txn.origin,
        "server_id": txn.server_id, "gtid": txn.gtid, "binlog_file": file, "binlog_pos": pos,
        "txn_id": txn.txn_id, "ts_us": txn.ts_us, "db": db, "table": table, "statement": statement,
        "epoch": txn.epoch,
    }
