"""`cdcsync bloom` survives a proof that fails on a lost server (one line when proofs stop, one when
they resume), and still stops on anything else (a lost lease)."""

from __future__ import annotations

import logging

import pymysql
import pytest

from consumers.cache.bloom.maintainer import BloomMaintainer, BrokerUnanswered


def maintainer(failures: list[BaseException]) -> BloomMaintainer:
    m = BloomMaintainer.__new__(BloomMaintainer)     # no servers: only the retry wrapper is exercised
    m.region, m._conn, m._unproven_since = "eu", None, None

    def prove() -> bool:
        if failures:
            raise failures.pop(0)
        return True

    m.prove = prove  # type: ignore[method-assign]
    return m


def test_lost_servers_are_survived_with_one_line_each_way(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "consumers.cache.bloom.maintainer")
    m = maintainer([BrokerUnanswered("Failed to get watermark offsets: Local: Timed out"),
                    pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")])
    for _ in range(3):
        m._prove_through_outages()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "cannot prove freshness (Failed to get watermark" in lines[0]
    assert "proving freshness again" in lines[1]


def test_a_lost_lease_still_stops_it() -> None:
    m = maintainer([RuntimeError("lost region eu's maintainer lease to another `cdcsync bloom`")])
    with pytest.raises(RuntimeError, match="lease"):
        m._prove_through_outages()
