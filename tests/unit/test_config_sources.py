"""Where settings come from: environment overrides, secret files, and redaction of secrets."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from cdcsync.cli import app
from schemas.config import ConfigError, load_config, parse_config
from schemas.config_secrets import plain_data

BASE = """
prefix = "cdcsync"
[kafka]
bootstrap = "k:9092"
[kafka.extra]
"security.protocol" = "SASL_SSL"
"sasl.password" = "kafka-Secret-1"
[regions.eu]
server_id = 1
[regions.eu.mysql]
password = "mysql-Secret-1"
[regions.eu.redis]
password = "redis-Secret-1"
[tables."shop.orders"]
cache_ttl_s = 60
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(BASE)
    return path


def test_environment_overrides_any_setting(config_file) -> None:
    env = {
        "CDCSYNC_PREFIX": "shop",
        "CDCSYNC_KAFKA__BOOTSTRAP": "other:9093",
        "CDCSYNC_REGIONS__EU__MYSQL__PASSWORD": "from-env",
        "CDCSYNC_REGIONS__EU__MYSQL__PORT": "3307",
        "CDCSYNC_REGIONS__EU__PRODUCER__INCLUDE": '["shop.*", "crm.users"]',
        "CDCSYNC_REGIONS__US__SERVER_ID": "2",                  # a region only the environment names
        "CDCSYNC_KAFKA__EXTRA__SASL_USERNAME": "svc",           # `_` stands for `.` in librdkafka keys
        "CDCSYNC_KAFKA__EXTRA__SASL_PASSWORD": "kafka-from-env",  # matches the existing "sasl.password"
        "CDCSYNC_TABLES__SHOP.ORDERS__CACHE_TTL_S": "120",
        "CDCSYNC_CONFIG": "/ignored.toml", "CDCSYNC_REGION": "eu", "CDCSYNC_REGIONS": "eu,us",  # CLI options
    }
    config = load_config(config_file, env)
    assert config.prefix == "shop" and config.kafka.bootstrap == "other:9093"
    eu = config.regions["eu"]
    assert eu.mysql.password.get_secret_value() == "from-env" and eu.mysql.port == 3307
    assert eu.producer.include == ("shop.*", "crm.users")
    assert config.regions["us"].server_id == 2
    settings = config.kafka.client_settings()
    assert settings["sasl.username"] == "svc" and settings["sasl.password"] == "kafka-from-env"
    assert config.table("shop", "orders").cache_ttl_s == 120


def test_bad_value_from_environment_names_key_and_variable(config_file) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(config_file, {"CDCSYNC_REGIONS__EU__MYSQL__PORT": "not-a-port"})
    assert "regions.eu.mysql.port: Input should be a valid integer" in str(err.value)
    assert "(from CDCSYNC_REGIONS__EU__MYSQL__PORT)" in str(err.value)
    with pytest.raises(ConfigError, match=r"regions.eu.mysql.pasword: Extra inputs are not permitted"):
        load_config(config_file, {"CDCSYNC_REGIONS__EU__MYSQL__PASWORD": "typo"})


def test_secrets_from_files(tmp_path) -> None:
    (tmp_path / "mysql").write_text("mysql-from-file\n")
    (tmp_path / "reader").write_text("reader-from-file")
    (tmp_path / "redis").write_text("redis-from-file\n")
    (tmp_path / "kafka").write_text("kafka-from-file\n")
    config = parse_config({
        "kafka": {"extra_files": {"sasl.password": str(tmp_path / "kafka")}},
        "regions": {"eu": {"server_id": 1,
                           "mysql": {"password": "inline", "password_file": str(tmp_path / "mysql"),
                                     "reader_user": "reader", "reader_password_file": str(tmp_path / "reader")},
                           "redis": {"password_file": str(tmp_path / "redis")}}}})
    mysql = config.regions["eu"].mysql
    assert mysql.password.get_secret_value() == "mysql-from-file"   # the file wins, newline stripped
    reader = mysql.reader()
    assert (reader.user, reader.password.get_secret_value()) == ("reader", "reader-from-file")
    assert mysql.connect_settings()["user"] == "cdcsync"
    assert config.regions["eu"].redis.password.get_secret_value() == "redis-from-file"
    assert config.kafka.client_settings()["sasl.password"] == "kafka-from-file"
    # Dumped and re-read (what tests and tools do), the config is the same.
    assert parse_config(plain_data(config)) == config


def test_unreadable_secret_file_names_setting_not_content(tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"regions": {"eu": {"server_id": 1, "mysql": {"password_file": str(tmp_path / "nope")}}}})
    assert "regions.eu.mysql: password_file: cannot read" in str(err.value)
    assert "No such file" in str(err.value)


def test_reader_defaults_to_user() -> None:
    mysql = parse_config({"regions": {"eu": {"server_id": 1, "mysql": {"user": "app", "password": "p"}}}}
                         ).regions["eu"].mysql
    assert mysql.reader() is mysql


def test_tls_settings() -> None:
    mysql = parse_config({"regions": {"eu": {"server_id": 1, "mysql": {
        "ssl_ca": "/ca.pem", "ssl_cert": "/c.pem", "ssl_key": "/k.pem", "reader_user": "r"}}}}).regions["eu"].mysql
    from producers.binlog.stream import connection_settings

    for settings in (mysql.connect_settings(), connection_settings(mysql.reader())):
        assert settings["ssl_ca"] == "/ca.pem" and settings["ssl_cert"] == "/c.pem"
        assert settings["ssl_key"] == "/k.pem" and settings["ssl_verify_cert"] is True
    assert connection_settings(mysql.reader())["user"] == "r"
    with pytest.raises(ConfigError, match="ssl_cert and ssl_key go together"):
        parse_config({"regions": {"eu": {"server_id": 1, "mysql": {"ssl_ca": "/ca", "ssl_cert": "/c"}}}})
    with pytest.raises(ConfigError, match="kafka.extra: x: a librdkafka setting is a string"):
        parse_config({"kafka": {"extra": {"x": [1]}}, "regions": {"eu": {"server_id": 1}}})


def test_config_show_redacts_every_secret(config_file, tmp_path, monkeypatch) -> None:
    (tmp_path / "oauth").write_text("oauth-Secret-1")
    monkeypatch.setenv("CDCSYNC_KAFKA__EXTRA_FILES__SASL_OAUTHBEARER_CLIENT_SECRET", str(tmp_path / "oauth"))
    monkeypatch.setenv("CDCSYNC_REGIONS__EU__MYSQL__READER_PASSWORD", "reader-Secret-1")
    result = CliRunner().invoke(app, ["config", "show", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    for secret in ("kafka-Secret-1", "mysql-Secret-1", "redis-Secret-1", "oauth-Secret-1", "reader-Secret-1"):
        assert secret not in result.output
    shown = orjson.loads(result.output)
    assert shown["kafka"]["extra"]["sasl.password"] == "**********"
    assert shown["kafka"]["extra"]["sasl.oauthbearer.client.secret"] == "**********"
    assert shown["kafka"]["extra"]["security.protocol"] == "SASL_SSL"
    assert shown["regions"]["eu"]["mysql"]["password"] == "**********"
    assert shown["regions"]["eu"]["redis"]["password"] == "**********"
    assert repr(load_config(config_file)).count("Secret-1") == 0


def test_invalid_config_fails_at_start_up_naming_the_key(config_file, monkeypatch) -> None:
    monkeypatch.setenv("CDCSYNC_REGIONS__EU__SERVER_ID", "0")
    result = CliRunner().invoke(app, ["producer", "--config", str(config_file), "--region", "eu"])
    assert result.exit_code == 2
    assert "regions.eu.server_id: Input should be greater than or equal to 1" in result.output
    assert "CDCSYNC_REGIONS__EU__SERVER_ID" in result.output
