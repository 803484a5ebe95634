"""`cdcsync verify` as a test assertion: run it after every convergence scenario."""

from __future__ import annotations

import time

import orjson

from cdcsync.tools.verify import VerifyReport, verify
from schemas.config import PipelineConfig


def assert_verified(config: PipelineConfig, *, check_cache: bool = True, chunk_rows: int = 50,
                    timeout: float = 0.0) -> VerifyReport:
    """Every region's tables, and (with `check_cache`) every region's cache, hold the same rows.

    With a `timeout`, verify is repeated until it passes (caches a scenario did not wait for may
    still be applying their last batch); the last report is shown when it never does.
    """
    deadline = time.monotonic() + timeout
    while True:
        report = verify(config, chunk_rows=chunk_rows, check_cache=check_cache)
        if report.ok or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    assert report.tables, "verify found no table to compare"
    assert report.ok, orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode()
    return report
