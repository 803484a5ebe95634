"""The producer's checkpoint: the binlog position up to which the broker has acknowledged everything.

It lives in one JSON file per region, `<checkpoint_dir>/<region>.json`, written atomically (temp
file, fsync, rename, fsync of the directory). Keep it on a persistent volume: losing it means a new
snapshot (or, with `snapshot = "never"`, a gap). The file carries the region's server_id so a
checkpoint is never applied to another server by mistake.

`epoch` names the binlog history this checkpoint follows: a random id made when a checkpoint is
first written (a snapshot, or streaming from now) and kept by every later save. Every published
message carries it, and the database sinks compare source GTIDs only within one epoch
(docs/apply.md, "When a replay is provably a replay"): after RESET MASTER or a failover the
producer needs a fresh checkpoint, hence a new epoch, so reused GTIDs never look like replays.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import orjson

from schemas.checkpoint import Checkpoint, CheckpointError
from schemas.position import BinlogPosition

class FileCheckpointStore:
    """Loads and saves one region's checkpoint. Not thread-safe; the producer owns it."""

    def __init__(self, directory: Path, region: str, server_id: int) -> None:
        self.path = Path(directory) / f"{region}.json"
        self.region = region
        self.server_id = server_id
        self.epoch: str | None = None   # the loaded checkpoint's; a new one on the first save otherwise

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
        self.epoch = checkpoint.epoch or None
        return checkpoint

    def save(self, position: BinlogPosition) -> Checkpoint:
        if self.epoch is None:
            self.epoch = uuid.uuid4().hex[:16]
        checkpoint = Checkpoint(region=self.region, server_id=self.server_id, gtid_state=position.gtid_state,
                                binlog_file=position.file, binlog_pos=position.pos,
                                updated_at_us=time.time_ns() // 1000, epoch=self.epoch)
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
        self.epoch = None
