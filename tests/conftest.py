"""Shared fixtures. Integration tests run against one real sandbox per session (deploy/local):
three MariaDB primaries, three Redis servers and a Tansu broker on free loopback ports.

Tests isolate themselves by database name and topic prefix, not by restarting servers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from deploy.local import Sandbox
from common.mysql import connect as mysql_connect
from schemas.config import PipelineConfig, load_config, parse_config

REGIONS = ["eu", "us", "ap"]


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("sandbox"))
    try:
        box.up(REGIONS)
        yield box
    finally:
        box.down()


@pytest.fixture(scope="session")
def sandbox_config(sandbox: Sandbox) -> PipelineConfig:
    return load_config(sandbox.config_path)


def connect(config: PipelineConfig, region: str, db: str | None = None, **kw) -> pymysql.Connection:
    """A connection as the region's user, through cdcsync's one opener (its TLS settings included)."""
    return mysql_connect(config.region(region).mysql, database=db, **kw)


@pytest.fixture(autouse=True)
def _reap_processes() -> Iterator[None]:
    yield
    from tests.support.producer import reap_all

    reap_all()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for databases, topic prefixes and groups of one test."""
    return uuid.uuid4().hex[:8]


def config_for_test(base: PipelineConfig, *, prefix: str, include: list[str], tmp: Path,
                    regions: list[str] | tuple[str, ...] | None = None, sink: dict | None = None,
                    top: dict | None = None, **producer_overrides) -> PipelineConfig:
    """The sandbox config narrowed to one test: its own topic prefix, tables and checkpoint dir,
    optionally only some `regions`, with `sink` settings and `top`-level settings overridden."""
    data = base.model_dump(mode="python")
    data["prefix"] = prefix
    if regions is not None:
        data["regions"] = {name: r for name, r in data["regions"].items() if name in regions}
    for name, region in data["regions"].items():
        region["mysql"]["password"] = base.regions[name].mysql.password.get_secret_value()
        region["producer"].update(include=include, checkpoint_dir=tmp / "checkpoints" / name,
                                  **producer_overrides)
        region["sink"].update(sink or {})
    data.update(top or {})
    return parse_config(data)


def create_database(config: PipelineConfig, regions, db: str, *statements: str) -> None:
    """`CREATE DATABASE db` and `statements` (with `{db}` filled in) in each region."""
    for region in regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for statement in statements:
                cur.execute(statement.format(db=db))
