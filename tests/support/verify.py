"""`cdcsync verify` as a test assertion: run it after a scenario converged."""

from __future__ import annotations

import orjson

from consumers.verify import verify
from schemas.config import PipelineConfig


def assert_verified(config: PipelineConfig, *, check_cache: bool = True, chunk_rows: int = 50) -> None:
    """Every region's tables, and (with `check_cache`) every region's cache, hold the same rows."""
    report = verify(config, chunk_rows=chunk_rows, check_cache=check_cache)
    assert report.tables, "verify found no table to compare"
    assert report.ok, orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode()
