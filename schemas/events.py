"""The messages on cdcsync's topics: one row change (`ChangeEvent`) or one DDL statement (`DdlEvent`).

The producer builds plain dicts in its hot path and serializes them with orjson; these models are
the contract those dicts satisfy (the tests check it) and what consumers decode with.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.conflict_record import VersionImage
from schemas.vclock import VectorClock
from schemas.version import SCHEMA_VERSION


class Op(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    TRUNCATE = "truncate"
    SNAPSHOT = "snapshot"


class _Message(BaseModel):
    # extra="ignore": readers tolerate fields added later under the same schema_version.
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = Field(SCHEMA_VERSION, description="Wire-format version; see schemas/version.py.")
    region: str = Field(description="Region whose binlog this was read from.")
    origin: str = Field(description="Region where the write was first made (differs for applied changes).")
    server_id: int = Field(description="server_id in the binlog event header.")
    gtid: str | None = Field(description="GTID of the transaction (MariaDB `d-s-n`, MySQL `uuid:n`).")
    binlog_file: str = Field(description="Binlog file of the event.")
    binlog_pos: int = Field(description="End position of the event in `binlog_file`.")
    txn_id: str = Field(description="Transaction id: the GTID, or `file:pos` of its first event.")
    ts_us: int = Field(description="Commit timestamp, µs since the epoch (MariaDB binlogs carry whole seconds).")
    db: str
    table: str | None
    epoch: str | None = Field(
        None, description="The producer's history id (its checkpoint's epoch): GTIDs compare only within one. "
                          "A fresh checkpoint (after RESET MASTER, a failover, --resnapshot) starts a new one.")


class ChangeEvent(_Message):
    kind: Literal["change"] = "change"
    table: str
    txn_index: int = Field(description="0-based index of this row change within its transaction.")
    txn_last: bool = Field(description="True on the last row change of the transaction.")
    op: Op
    pk: dict[str, Any] = Field(description="Primary-key column -> value, in key order.")
    before: dict[str, Any] | None = Field(description="Row image before the change (update, delete).")
    after: dict[str, Any] | None = Field(description="Row image after the change (insert, update, snapshot).")
    types: dict[str, str] = Field(description="Column -> SQL type, e.g. `int unsigned`, `decimal(10,2)`.")
    pk_fold: dict[str, str] | None = Field(
        None, description="For the key's text columns whose collation compares other spellings equal "
                          "(`utf8mb4_unicode_ci`: `bob` = `BOB ` = `bób`): column -> the value's fold "
                          "(schemas/key_fold.py), which names the row in Kafka, cache and Bloom keys. "
                          "Absent when no key column folds (and from producers before it existed).")
    vclock: VectorClock | None = Field(None, description="Vector clock of this row version.")
    heads: list[VersionImage] | None = Field(
        None, description="For a resolved version (region-priority, custom): the concurrent versions it stands for.")
    version_origin: str | None = Field(
        None, description="Snapshot events only: the region that wrote this row version (`row_clocks.origin`); "
                          "`origin` stays the snapshotting region, so every region reads the event.")


class DdlEvent(_Message):
    kind: Literal["ddl"] = "ddl"
    statement: str = Field(description="The DDL statement as the server logged it.")
    partitions: int | None = Field(
        None, description="Set only on a schema owner's DDL marker, which its producer writes to every partition "
                          "of the table's change topic: how many partitions got one (docs/schema-changes.md).")


Message = Annotated[Union[ChangeEvent, DdlEvent], Field(discriminator="kind")]
MESSAGE_ADAPTER: TypeAdapter[ChangeEvent | DdlEvent] = TypeAdapter(Message)
