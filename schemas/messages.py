"""Building the wire messages of schemas/events.py as plain dicts (the producer's hot path).

Kafka key: the canonical PK (its values as a JSON list; a text column whose collation folds by its
fold, schemas/key_fold.py), so every change of a row, in any spelling, lands on one partition, in
commit order. With `topic_mode = "per_region"` the key is prefixed by `db.table:`.
Headers: `cdcsync-kind` (change|ddl), `cdcsync-schema-version`, `cdcsync-origin`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas import key_fold
from schemas.codec import canonical_pk_bytes
from schemas.version import SCHEMA_VERSION, SUPPORTED_VERSIONS

_VERSION_HEADER = ("cdcsync-schema-version", str(SCHEMA_VERSION).encode())
_SUPPORTED_VERSION_HEADERS = frozenset(str(v).encode() for v in SUPPORTED_VERSIONS)


def headers(kind: str, origin: str) -> list[tuple[str, bytes]]:
    return [("cdcsync-kind", kind.encode()), _VERSION_HEADER, ("cdcsync-origin", origin.encode())]


def change_origin(message_headers: list[tuple[str, bytes | None]] | None) -> str | None:
    """The origin a message's headers give, when they say it is a change of a supported schema
    version; else None (headers missing, or anything they do not prove)."""
    if not message_headers:
        return None
    kind = version = origin = None
    for name, value in message_headers:
        if name == "cdcsync-kind":
            kind = value
        elif name == "cdcsync-schema-version":
            version = value
        elif name == "cdcsync-origin":
            origin = value
    if kind != b"change" or version not in _SUPPORTED_VERSION_HEADERS or not origin:
        return None
    try:
        return origin.decode()
    except UnicodeDecodeError:
        return None


def row_key(pk_values: list[Any], key_prefix: bytes) -> bytes:
    """The Kafka key: `key_prefix` (`db.table:` on a per-region topic, else empty), then the canonical PK."""
    return key_prefix + canonical_pk_bytes(pk_values if isinstance(pk_values, list) else list(pk_values))


def message_key(message: dict[str, Any], fold: Mapping[str, str | None] | None, key_prefix: bytes) -> bytes:
    """The Kafka key of a change `message`, by the binlog and the snapshot path alike. With `fold`
    (text key column -> collation, `key_fold.folding`) the key is named by its fold, one key whatever
    its spelling, and the message gets its `pk_fold`."""
    if not fold:
        return row_key(list(message["pk"].values()), key_prefix)
    message["pk_fold"] = folded = key_fold.fold_pk(message["pk"], fold)
    return row_key(key_fold.key_values(message["pk"], folded), key_prefix)


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


def ddl(txn: TxnInfo, file: str, pos: int, db: str, table: str | None, statement: str,
        partitions: int | None = None) -> dict[str, Any]:
    """A DDL message; with `partitions`, a schema owner's marker on the table's change topic."""
    message = {
        "schema_version": SCHEMA_VERSION, "kind": "ddl", "region": txn.region, "origin": txn.origin,
        "server_id": txn.server_id, "gtid": txn.gtid, "binlog_file": file, "binlog_pos": pos,
        "txn_id": txn.txn_id, "ts_us": txn.ts_us, "db": db, "table": table, "statement": statement,
        "epoch": txn.epoch,
    }
    if partitions is not None:
        message["partitions"] = partitions
    return message
