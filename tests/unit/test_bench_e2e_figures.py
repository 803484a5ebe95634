"""The arithmetic of bench/e2e.py (bench/e2e_figures.py): percentiles, CPU per write, the goals of
issue 13, the py-spy summary, and its config overrides."""

from __future__ import annotations

import pytest

from bench.e2e import apply_overrides, parse_value
from bench.e2e_figures import (NO_PYTHON, cpu_us_per_write, goals, latency_summary, parse_collapsed,
                               percentile, top_frames)


def test_percentiles_are_measured_values_by_nearest_rank() -> None:
    values = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert percentile(values, 50) == 0.3
    assert percentile(values, 99) == 0.5
    assert percentile(values, 0) == 0.1
    assert percentile(list(range(1, 101)), 99) == 99
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_latency_summary_in_ms() -> None:
    assert latency_summary([0.010, 0.020, 0.030]) == {"p50_ms": 20.0, "p99_ms": 30.0, "max_ms": 30.0, "n": 3}


def test_cpu_per_write_per_process_and_total() -> None:
    assert cpu_us_per_write({"eu/producer": 0.6, "us/db": 0.3}, 3000) == {"eu/producer": 200.0, "us/db": 100.0,
                                                                           "total": 300.0}
    with pytest.raises(ValueError):
        cpu_us_per_write({"eu/producer": 1.0}, 0)


def test_goals_say_met_unmet_and_unmeasured() -> None:
    result = goals(catchup_s=0.8, burst_tps=5500.4, cpu_total_us=300.0, db_p50_ms=50.0, cache_p50_ms=120.0,
                   p99_ms=200.0,
                   ratios={"db": 0.9, "capture_bulk": 2.5})
    assert result["catchup_s"] == {"value": 0.8, "max": 1.0, "met": True, "burst_tps": 5500, "comparable": True}
    slow = goals(catchup_s=0.5, burst_tps=700.0, cpu_total_us=1.0, db_p50_ms=1.0, cache_p50_ms=1.0, p99_ms=1.0)
    assert slow["catchup_s"]["met"] is True and slow["catchup_s"]["comparable"] is False   # a loaded machine
    assert result["cpu_us_per_write"]["met"] is False
    assert result["db_visible_p50_ms"]["met"] is True           # at most: the limit itself passes
    assert result["cache_visible_p50_ms"]["met"] is False
    assert result["visible_p99_ms"]["met"] is True
    assert result["apply_db_ratio"] == {"value": 0.9, "min": 0.8, "met": True}
    assert result["capture_bulk_ratio"]["met"] is False
    assert result["apply_cache_ratio"] == {"value": None, "min": 0.8, "met": None}


def test_py_spy_stacks_summarised_by_function_and_module() -> None:
    raw = ["main (cdcsync/cli.py:3);run (consumers/runner.py:10);decode (schemas/codec.py:5);"
           "validate_json (pydantic/type_adapter.py:9) 6",
           "main (cdcsync/cli.py:3);run (consumers/runner.py:11);write (consumers/db/sink.py:7) 3",
           "main (cdcsync/cli.py:3);run (consumers/runner.py:12);poll (confluent_kafka/x.py:1) 9",
           ""]
    assert parse_collapsed([" 1"]) == {(NO_PYTHON,): 1}       # a thread outside Python code
    stacks = parse_collapsed(raw)
    summary = top_frames(stacks, idle=("poll",))
    assert summary["samples"] == 18 and summary["idle_share"] == 0.5
    assert summary["self"][0] == ["validate_json (pydantic/type_adapter.py)", 0.667]
    assert dict(map(tuple, summary["modules"]))["pydantic"] == 0.667
    own = dict(map(tuple, summary["own_total"]))
    assert own["decode (schemas/codec.py)"] == 0.667 and own["write (consumers/db/sink.py)"] == 0.333
    assert "main (cdcsync/cli.py)" not in own       # on every busy sample: the entry chain, not a finding
    with pytest.raises(ValueError, match="line 1"):
        parse_collapsed(["no count here"])


def test_overrides_reach_every_region_and_keep_librdkafka_dots() -> None:
    config = {"regions": {"eu": {"sink": {"batch_max_events": 10}}, "us": {}}, "kafka": {"bootstrap": "x"}}
    apply_overrides(config, ["sink.batch_max_ms=20", "kafka.extra.fetch.wait.max.ms=10", "producer.linger_ms=0",
                             "meta_db=m"])
    assert config["regions"]["eu"]["sink"] == {"batch_max_events": 10, "batch_max_ms": 20}
    assert config["regions"]["us"] == {"sink": {"batch_max_ms": 20}, "producer": {"linger_ms": 0}}
    assert config["kafka"] == {"bootstrap": "x", "extra": {"fetch.wait.max.ms": 10}}
    assert config["meta_db"] == "m"
    assert (parse_value("1.5"), parse_value("true"), parse_value("abc")) == (1.5, True, "abc")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        apply_overrides(config, ["sink.batch_max_ms"])
