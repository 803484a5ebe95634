"""One conflict resolution, as the conflict log stores it and `<prefix>.conflicts` carries it.

A sink that decides RESOLVED (two concurrent versions of a row) writes one `ConflictRecord` to
`<meta_db>.conflict_log` in the same transaction as the apply, then publishes it to the conflicts
topic for alerting. An operator's override (`cdcsync conflicts resolve`) is logged the same way,
with `kind = "override"` and `overrides` naming the record it settled.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.version import SCHEMA_VERSION


class VersionImage(BaseModel):
    """One row version: its values (None = deleted), the region that wrote it, and its clock."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    values: dict[str, Any] | None
    origin: str
    counters: dict[str, int]
    hlc_us: int
    hash: str = Field(description="SHA-256 of the values' canonical JSON (schemas/row_version.value_hash).")


class ConflictRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    id: int | None = Field(None, description="conflict_log id; None until stored.")
    # unique: two keys claimed one unique value; repair: `cdcsync verify --repair` (cdcsync/tools/repair.py)
    kind: Literal["resolution", "override", "unique", "repair"] = "resolution"
    logged_at_us: int = Field(description="When the sink decided, µs since the epoch (UTC).")
    region: str = Field(description="The region whose sink decided.")
    db: str
    table: str
    pk: dict[str, Any] = Field(description="Primary-key column -> wire value.")
    strategy: str
    winner: Literal["local", "remote", "merged"] = Field(
        description="Whose values the result holds: the local, the remote, or neither whole (merged).")
    local: VersionImage | None
    remote: VersionImage
    result: VersionImage
    losers: list[VersionImage] = Field(default_factory=list)
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    source_gtid: str | None = Field(None, description="GTID of the remote version's transaction in its origin.")
    local_gtid: str | None = Field(None, description="GTID state of this region when it decided (gtid_binlog_pos).")
    overrides: int | None = Field(None, description="For an override: the id of the record it settles.")
    columns: dict[str, str] | None = Field(
        None, description="column-lww: each column the remote version changed -> the version whose value the "
                          "result holds (`remote` or `local`); None for whole-row strategies.")
