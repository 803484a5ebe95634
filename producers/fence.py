"""One producer per region: a named lock in the region's own database, held for the producer's life.

`GET_LOCK('cdcsync.producer.<prefix>.<region>', 0)` on a dedicated connection. A second producer for
the region finds the lock taken and refuses to start (`ProducerFenced`), so two producers never
publish the same binlog twice under two checkpoints. The server frees the lock when the holder's
connection ends, which is what makes `kill -9` safe: the kernel closes the dead process's socket,
the server drops the session and a new producer can take the lock at once.

The holder re-checks the lock every `CHECK_INTERVAL_S` (from the capture loop). If its connection was
lost (a server restart), it takes the lock again on a new connection; if another producer took it
meanwhile, it stops with `ProducerFenced` rather than publish beside it.
"""

from __future__ import annotations

import logging
import time

import pymysql

from common.mysql import connect
from schemas.config import MySQLConfig

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 5.0
# The fence connection idles between checks; never let the server time it out (that frees the lock).
_SESSION_TIMEOUT_S = 31_536_000


class ProducerFenced(RuntimeError):
    """Another producer holds the region's lock."""


def lock_name(prefix: str, region: str) -> str:
    # MariaDB and MySQL cap lock names at 64 characters.
    return f"cdcsync.producer.{prefix}.{region}"[:64]


class ProducerFence:
    """Owned by the producer's main thread. `acquire()` once, `check()` now and then, `release()` at exit."""

    def __init__(self, mysql: MySQLConfig, prefix: str, region: str) -> None:
        self._mysql = mysql
        self.region = region
        self.name = lock_name(prefix, region)
        self._conn: pymysql.Connection | None = None
        self._active = False   # acquired once and not released: check() keeps it held
        self._next_check = 0.0

    def acquire(self) -> None:
        """Take the lock or raise ProducerFenced naming the holder's connection."""
        conn = connect(self._mysql)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION wait_timeout = %s", (_SESSION_TIMEOUT_S,))
                cur.execute("SELECT GET_LOCK(%s, 0), IS_USED_LOCK(%s)", (self.name, self.name))
                got, holder = cur.fetchone()
        except BaseException:
            conn.close()
            raise
        if got != 1:
            conn.close()
            raise ProducerFenced(
                f"region {self.region}: another producer is already running for this region (it holds the lock "
                f"{self.name!r} on {self._mysql.host}:{self._mysql.port}, connection id {holder}); stop it first, "
                f"or leave this one off")
        self._conn = conn
        self._active = True
        self._next_check = time.monotonic() + CHECK_INTERVAL_S

    def check(self) -> None:
        """Cheap when not due. Raises ProducerFenced if the lock went to another producer."""
        if not self._active or time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + CHECK_INTERVAL_S
        if self._conn is not None:
            try:
                with self._conn.cursor() as cur:
                    cur.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self.name,))
                    (held,) = cur.fetchone()
                if held == 1:
                    return
            except pymysql.MySQLError as err:
                log.warning("region %s: the producer lock's connection was lost (%s); taking the lock again",
                            self.region, err)
            self._close()
        try:
            self.acquire()
        except pymysql.MySQLError as err:   # the server is still away: the binlog stream says so too
            log.warning("region %s: cannot take the producer lock again yet (%s)", self.region, err)
            self._next_check = time.monotonic() + 1.0
            return
        log.info("region %s: reconnected to %s:%s and took the producer lock again", self.region,
                 self._mysql.host, self._mysql.port)

    def release(self) -> None:
        if self._conn is not None:
            try:
                with self._conn.cursor() as cur:
                    cur.execute("SELECT RELEASE_LOCK(%s)", (self.name,))
            except pymysql.MySQLError:
                pass   # a dead connection has released it already
        self._active = False
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None
