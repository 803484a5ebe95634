"""The producer's checkpoint record: the binlog position up to which the broker has acknowledged
everything, with its region, server_id and epoch. Stored by common/checkpoint_store.py."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from schemas.position import BinlogPosition

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    pass


class Checkpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = FORMAT_VERSION
    region: str
    server_id: int
    gtid_state: str
    binlog_file: str
    binlog_pos: int
    updated_at_us: int
    epoch: str = ""          # "" in files written before epochs existed

    @property
    def position(self) -> BinlogPosition:
        return BinlogPosition(self.gtid_state, self.binlog_file, self.binlog_pos)
