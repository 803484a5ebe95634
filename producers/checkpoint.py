"""The producer's checkpoint: the binlog position up to which the broker has acknowledged everything.

It lives in one JSON file per region, `<checkpoint_dir>/<region>.json`, written atomically (temp
file, fsync, rename, fsync of the directory). Keep it on a persistent volume: losing it means a new
snapshot (or, with `snapshot = "never"`, a gap). The file carries the region's server_id so a
checkpoint is never applied to another server by mistake.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict

from producers.position import BinlogPosition

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

    @property
    def position(self) -> BinlogPosition:
        return BinlogPosition(self.gtid_state, self.binlog_file, self.binlog_pos)


class FileCheckpointStore:
    """Loads and saves one region's checkpoint. Not thread-safe; the producer owns it."""

    def __init__(self, directory: Path, region: str, server_id: int) -> None:
        self.path = Path(directory) / f"{region}.json"
        self.region = region
        self.server_id = server_id

    def load(self) -> Checkpoint | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            checkpoint = Checkpoint.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValueError) as err:
            raise CheckpointError(f"checkpoint {self.path} is unreadable ({err}); move it away and "
                                  f"re-snapshot with `cdcsync producer --resnapshot`") from None
        if checkpoint.region != self.region or checkpoint.server_id != self.server_id:
            raise CheckpointError(
                f"checkpoint {self.path} belongs to region {checkpoint.region!r} server_id "
                f"{checkpoint.server_id}, not {self.region!r} server_id {self.server_id}")
        return checkpoint

    def save(self, position: BinlogPosition) -> Checkpoint:
        checkpoint = Checkpoint(region=self.region, server_id=self.server_id, gtid_state=position.gtid_state,
                                binlog_file=position.file, binlog_pos=position.pos,
                                updated_at_us=time.time_ns() // 1000)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(orjson.dumps(checkpoint.model_dump(), option=orjson.OPT_INDENT_2))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return checkpoint

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
