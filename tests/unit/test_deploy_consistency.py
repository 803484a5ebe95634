"""tests/support/consistency.py: the checks the deployment tests rely on must themselves catch mistakes."""

from __future__ import annotations

import pytest

from producers.preflight import binlog_problems
from tests.support.consistency import (CommandLineError, env_setting_exists, metric_definitions, mysqld_variables,
    parse_cli, promql_grouping_labels, promql_metric_names, promql_selector_labels, series_index)


def test_parse_cli_accepts_a_real_command_and_returns_its_parameters() -> None:
    parsed = parse_cli(["consumer", "--config", "/etc/c.toml", "--region", "eu", "--sink", "db"])
    assert parsed.path == ("consumer",)
    assert parsed.params["region"] == "eu" and parsed.params["sink"] == "db"
    assert str(parsed.params["config"]) == "/etc/c.toml"
    assert parsed.params["log_format"] == "text"          # the CLI's default, not ours


def test_parse_cli_reads_envvar_options_from_the_given_environment_only() -> None:
    parsed = parse_cli(["producer"], env={"CDCSYNC_CONFIG": "/c.toml", "CDCSYNC_REGION": "us",
                                          "CDCSYNC_METRICS_PORT": "9101"})
    assert parsed.params["region"] == "us" and parsed.params["metrics_port"] == 9101
    with pytest.raises(CommandLineError, match="--region"):
        parse_cli(["producer", "--config", "/c.toml"], env={})


@pytest.mark.parametrize("argv, problem", [
    (["producer", "--config", "/c.toml", "--region", "eu", "--bogus"], "--bogus"),
    (["producer", "--config", "/c.toml", "--region", "eu", "--metrics-port", "http"], "http"),
    (["consumer", "--config", "/c.toml", "--region", "eu"], "--sink"),
    (["consumers", "--config", "/c.toml"], "no such command 'consumers'"),
    (["dlq", "lists", "--config", "/c.toml"], "no such command 'lists'"),
])
def test_parse_cli_refuses_what_the_cli_refuses(argv, problem) -> None:
    with pytest.raises(CommandLineError, match=problem):
        parse_cli(argv, env={})


def test_parse_cli_walks_nested_groups() -> None:
    assert parse_cli(["dlq", "list", "--config", "/c.toml", "--region", "eu"]).path == ("dlq", "list")


def test_metric_definitions_are_read_from_the_source() -> None:
    defs = metric_definitions()
    events = defs["cdcsync_producer_events_total"]
    assert events.kind == "Counter" and events.labels == ("region", "db", "table")
    assert events.where.startswith("producers/metrics.py:")
    assert defs["cdcsync_sink_apply_seconds"].kind == "Histogram"
    series = series_index(defs)
    assert {"cdcsync_producer_events_total", "cdcsync_sink_apply_seconds_bucket",
            "cdcsync_sink_apply_seconds_count", "cdcsync_producer_lag_seconds"} <= set(series)
    assert "cdcsync_sink_apply_seconds" not in series      # a histogram has no bare series


def test_promql_parsing_finds_metrics_and_labels_not_functions() -> None:
    expr = ('histogram_quantile(0.99, sum by (region, le) (rate(cdcsync_sink_apply_seconds_bucket'
            '{region=~"$region", sink="db"}[$__rate_interval]))) > 5 * time() - up{component="producer"} '
            'and on (region) rate(x_total[1h] offset 5m)')
    assert promql_metric_names(expr) == {"cdcsync_sink_apply_seconds_bucket", "up", "x_total"}
    assert promql_selector_labels(expr) == {"cdcsync_sink_apply_seconds_bucket": {"region", "sink"},
                                            "up": {"component"}}
    assert promql_grouping_labels(expr) == {"region", "le"}


def test_mysqld_flags_become_server_variables_preflight_understands() -> None:
    good = ["mysqld", "--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL", "--gtid-mode=ON"]
    variables = mysqld_variables(good)
    assert variables["log_bin"] == "ON" and variables["gtid_mode"] == "ON"
    assert binlog_problems(variables, "mysql") == []
    problems = binlog_problems(mysqld_variables([g for g in good if "metadata" not in g]), "mysql")
    assert any("binlog_row_metadata" in p for p in problems)
    assert binlog_problems(mysqld_variables(["mysqld", "--skip-log-bin", *good[2:]]), "mysql")


def test_env_setting_exists_follows_the_key_path() -> None:
    from schemas.config import parse_config

    config = parse_config({"regions": {"eu": {"server_id": 1}}})
    assert env_setting_exists(config, "CDCSYNC_REGIONS__EU__MYSQL__PASSWORD")
    assert env_setting_exists(config, "CDCSYNC_KAFKA__BOOTSTRAP")
    assert not env_setting_exists(config, "CDCSYNC_REGIONS__US__MYSQL__PASSWORD")      # no such region
    assert not env_setting_exists(config, "CDCSYNC_REGIONS__EU__MYSQL__PASWORD")       # typo
