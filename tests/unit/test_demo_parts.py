"""The demo's pure parts: when it calls the pipeline settled, its rates, its config, its summary."""

from __future__ import annotations

import tomllib
from pathlib import Path

import tomli_w

from cdcsync.demo.progress import RegionRate
from cdcsync.demo.quiescence import QuiescenceTracker, busy
from cdcsync.demo.summary import explore_commands, pick_examples
from cdcsync.demo.tables import TABLES, write_demo_config
from cdcsync.tools.status import GroupLag, RegionStatus
from common.group_lag import PartitionLag
from schemas.checkpoint import Checkpoint
from schemas.config import load_config
from schemas.conflict_record import ConflictRecord, VersionImage
from schemas.position import BinlogPosition


def status(region: str, *, checkpoint: str = "1-1-10", server: str = "1-1-10", db_lag: int = 0,
           cache_lag: int = 0, error: str | None = None) -> RegionStatus:
    cp = Checkpoint(region=region, server_id=1, gtid_state=checkpoint, binlog_file="binlog.000001", binlog_pos=4,
                    updated_at_us=0)
    groups = [GroupLag(f"g.{sink}", sink, (PartitionLag("t", 0, 10 - lag, 0, 10),))
              for sink, lag in (("db", db_lag), ("cache", cache_lag))]
    return RegionStatus(region, checkpoint=cp, server=BinlogPosition(server, "binlog.000001", 4), groups=groups,
                        errors=[error] if error else [])


def test_busy_names_every_lag_and_error() -> None:
    assert busy([status("eu"), status("us")]) == []
    reasons = busy([status("eu", checkpoint="1-1-8"), status("us", db_lag=3, cache_lag=1, error="kafka down")])
    assert reasons == ["eu: producer 2 transactions behind", "us: kafka down", "us: db sink 3 events behind",
                       "us: cache sink 1 events behind"]


def test_settled_only_after_two_idle_rounds_with_the_same_positions() -> None:
    tracker = QuiescenceTracker()
    assert not tracker.observe([status("eu", db_lag=2)])
    assert not tracker.observe([status("eu")])                      # idle once
    assert not tracker.observe([status("eu", checkpoint="1-1-11", server="1-1-11")])   # idle, but it moved
    assert not tracker.observe([status("eu", db_lag=1, checkpoint="1-1-11", server="1-1-11")])
    assert not tracker.observe([status("eu", checkpoint="1-1-11", server="1-1-11")])   # a lagging round resets
    assert tracker.observe([status("eu", checkpoint="1-1-11", server="1-1-11")])
    assert tracker.settled


def test_rate_survives_a_producer_restart() -> None:
    rate = RegionRate(window_s=10)
    for t, value in ((0.0, 100), (1.0, 150), (2.0, 20), (3.0, 70)):   # restarted between 1 and 2
        rate.add(t, value)
    rate.add(3.5, None)                                                # endpoint down: ignored
    assert rate.total == 220
    assert rate.per_second == (220 - 100) / 3


def test_demo_config_adds_strategies_metrics_ports_and_the_demo_tables(tmp_path: Path) -> None:
    base = {"prefix": "cdcsync", "meta_db": "cdcsync", "kafka": {"bootstrap": "127.0.0.1:1"},
            "regions": {name: {"server_id": i + 1, "mysql": {"port": 3306 + i}, "producer": {"checkpoint_dir": "c"}}
                        for i, name in enumerate(["eu", "us", "ap"])}}
    (tmp_path / "cdcsync.toml").write_text(tomli_w.dumps(base))
    path = write_demo_config(tmp_path / "cdcsync.toml", tmp_path / "demo.toml", ["eu", "us", "ap"])
    config = load_config(path)
    assert {t.qualified: config.table(*t.qualified.split(".")).conflict_strategy for t in TABLES} == {
        "shop.products": "lww", "shop.inventory": "custom", "shop.customers": "region-priority", "shop.stock": "lww"}
    assert config.table("shop", "stock").delta_columns == ("on_hand",)
    assert config.table("shop", "inventory").custom_resolver == "cdcsync.demo.resolvers:most_on_hand"
    assert config.table("shop", "customers").region_priority == ("eu", "us", "ap")
    ports = {r.metrics_port for r in config.regions.values()}
    assert len(ports) == 3 and None not in ports
    assert all(r.producer.include == ("shop.*",) for r in config.regions.values())
    assert tomllib.loads(path.read_text())["regions"]["eu"]["mysql"]["port"] == 3306


def record(region: str, table: str, id_: int, deleted: bool = False) -> ConflictRecord:
    v = VersionImage(values=None if deleted else {"k": 1, "v": "x"}, origin="eu", counters={"eu": 1}, hlc_us=1,
                     hash="h")
    return ConflictRecord(id=id_, logged_at_us=1, region=region, db="shop", table=table, pk={"k": 1}, strategy="lww",
                          winner="local", local=v, remote=v, result=v)


def test_examples_cover_every_table_first_preferring_a_delete_and_new_regions() -> None:
    records = [record("eu", "a", 1), record("eu", "a", 2, deleted=True), record("us", "a", 3),
               record("eu", "b", 4), record("us", "b", 5), record("eu", "b", 6), record("ap", "c", 7)]
    chosen = pick_examples(records, limit=4)
    assert [(r.region, r.table, r.id) for r in chosen][:3] == [("eu", "a", 2), ("us", "b", 5), ("ap", "c", 7)]
    assert len(chosen) == 4 and len({id(r) for r in chosen}) == 4


def test_explore_commands_match_what_is_left(tmp_path: Path) -> None:
    examples = [record("us", "products", 42)]
    text = {mode: "\n".join(str(line) for line in explore_commands(tmp_path, examples, mode).renderables)
            for mode in ("running", "stopped", "removed")}
    assert f"cdcsync conflicts show  42 --config {tmp_path}/demo.toml --region us" in text["running"]
    assert f"cdcsync sandbox down --dir {tmp_path}" in text["running"]
    assert f"cdcsync sandbox up --regions eu,us,ap --dir {tmp_path}" in text["stopped"]
    assert "--config DIR/cdcsync.toml" in text["removed"] and str(tmp_path) not in text["removed"]
    for mode in text.values():
        assert "conflicts list" in mode and "conflicts stats" in mode


def test_explore_commands_list_the_log_of_a_differing_row(tmp_path: Path) -> None:
    group = explore_commands(tmp_path, [record("us", "products", 42)], "stopped", focus=("shop.customers", {"id": 3}))
    text = "\n".join(str(line) for line in group.renderables)
    assert f"conflicts list  --config {tmp_path}/cdcsync.toml --table shop.customers --key id=3" in text


def test_exit_code_and_teardown_whatever_happens(monkeypatch, tmp_path: Path) -> None:
    from cdcsync.demo import run

    torn_down = []
    monkeypatch.setattr(run.DemoRun, "teardown", lambda self, keep_servers: torn_down.append(keep_servers))

    def outcome(result):
        def fake(demo_run, options, mode):
            if isinstance(result, BaseException):
                raise result
            return result
        return fake

    for result, code in ((True, 0), (False, 1), (run.DemoFailed("no producer"), 1), (RuntimeError("boom"), 1),
                         (KeyboardInterrupt(), 130)):
        monkeypatch.setattr(run, "_demo", outcome(result))
        assert run.main(run.DemoOptions(dir=tmp_path / "box")) == code, result
    assert torn_down == [False] * 5
    monkeypatch.setattr(run, "_demo", outcome(True))
    assert run.main(run.DemoOptions(dir=tmp_path / "box", keep=True)) == 0 and torn_down[-1] is True
