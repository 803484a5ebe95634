"""The config model: defaults, validation messages that name the key, include/exclude globs."""

from __future__ import annotations

import pytest

from schemas.config import ConfigError, load_config, parse_config, table_selected


def minimal(**extra):
    return {"regions": {"eu": {"server_id": 1}, "us": {"server_id": 2}}, **extra}


def test_defaults_and_region_names_from_keys() -> None:
    config = parse_config(minimal())
    assert config.prefix == "cdcsync" and config.topic_mode == "per_table"
    assert config.regions["eu"].name == "eu"
    assert config.kafka_for("us").bootstrap == "127.0.0.1:9092"
    assert config.regions["eu"].producer.snapshot == "initial"


@pytest.mark.parametrize("data, key, problem", [
    (minimal(topic_mode="one_big"), "topic_mode", "Input should be 'per_table' or 'per_region'"),
    ({"regions": {"eu": {"server_id": 0}}}, "regions.eu.server_id", "greater than or equal to 1"),
    ({"regions": {"EU!": {"server_id": 1}}}, "regions.EU!.name", "must match"),
    ({"regions": {"eu": {"server_id": 1, "mysql": {"port": "x"}}}}, "regions.eu.mysql.port", "valid integer"),
    ({"regions": {"eu": {"server_id": 1, "typo": 1}}}, "regions.eu.typo", "Extra inputs are not permitted"),
    ({"regions": {"eu": {"server_id": 1}, "us": {"server_id": 1}}}, "(top level)", "server_id must be unique"),
    (minimal(tables={"d.t": {"conflict_strategy": "custom"}}), 'tables."d.t"', "needs custom_resolver"),
    (minimal(tables={"d.t": {"conflict_strategy": "custom", "custom_resolver": "nocolon"}}), 'tables."d.t"',
     "must be `module:function`"),
    (minimal(tables={"d.t": {"conflict_strategy": "region-priority"}}), 'tables."d.t"', "needs region_priority"),
    (minimal(tables={"d.t": {"conflict_strategy": "region-priority", "region_priority": ["eu", "mars"]}}),
     "(top level)", "tables.\"d.t\".region_priority: unknown regions ['mars'], regions not listed ['us']"),
    (minimal(tables={"d.t": {"conflict_strategy": "bogus"}}), 'tables."d.t".conflict_strategy', "Input should be"),
    (minimal(tables={"d.t": {"schema_owner": "mars"}}), "(top level)",
     "tables.\"d.t\".schema_owner: 'mars' is not a region (regions: eu, us)"),
    (minimal(regions={"eu": {"server_id": 1, "sink": {"schema_mismatch": "skip"}}}), "regions.eu.sink.schema_mismatch",
     "Input should be"),
    (minimal(tombstone_min_age_s=3600), "(top level)",
     "tombstone_min_age_s (3600) must be at least cache_tombstone_ttl_s (86400)"),
])
def test_invalid_config_names_key_and_problem(data, key, problem) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert f"{key}:" in str(err.value) and problem in str(err.value)


def test_column_merge_is_refused_with_the_key_and_the_reason() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(minimal(tables={"shop.t": {"conflict_strategy": "column-merge"}}))
    heading, line = str(err.value).splitlines()         # one line, after "invalid config:"
    assert heading == "invalid config:"
    assert line == ('  tables."shop.t".conflict_strategy: \'column-merge\' is not offered under that name: '
                    "per-column last-writer-wins is 'column-lww' (see docs/conflicts.md)")


def test_column_lww_is_offered_in_a_mesh_without_delta_columns() -> None:
    config = parse_config(minimal(tables={"shop.t": {"conflict_strategy": "column-lww"}}))
    assert config.table("shop", "t").conflict_strategy == "column-lww"
    with pytest.raises(ConfigError, match="does not combine with delta_columns"):
        parse_config(minimal(tables={"shop.t": {"conflict_strategy": "column-lww", "delta_columns": ["n"]}}))
    star = minimal(tables={"shop.t": {"conflict_strategy": "column-lww"}})
    star["topology"] = {"mode": "star", "hub": "eu"}
    with pytest.raises(ConfigError, match="'column-lww' is offered in a mesh topology only"):
        parse_config(star)


def test_conflict_strategy_defaults_and_settings() -> None:
    config = parse_config(minimal(tables={"d.t": {"conflict_strategy": "region-priority",
                                                  "region_priority": ["us", "eu"]}}))
    assert config.table("d", "t").region_priority == ("us", "eu")
    assert config.table("d", "other").conflict_strategy == "lww"


def test_load_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("regions = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_unknown_region_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown region 'mars'"):
        parse_config(minimal()).region("mars")


def test_include_exclude() -> None:
    producer = parse_config(minimal()).regions["eu"].producer.model_copy(
        update={"include": ("shop.*", "crm.users"), "exclude": ("shop.tmp_*",)})
    assert table_selected(producer, "shop", "orders")
    assert table_selected(producer, "crm", "users")
    assert not table_selected(producer, "crm", "notes")
    assert not table_selected(producer, "shop", "tmp_x")
