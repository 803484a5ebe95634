"""Known operator errors become one line naming the fix (cdcsync/expected_errors.py); anything else stays a
traceback, and `--debug` keeps the traceback of known ones too."""

from __future__ import annotations

import pymysql
import pytest
import redis
from confluent_kafka import KafkaError, KafkaException

from cdcsync import cli
from cdcsync.expected_errors import FENCED_EXIT, describe
from common import log_context
from producers.fence import ProducerFenced, lock_name


@pytest.fixture(autouse=True)
def _region():
    saved = log_context.current()
    log_context.set_component("eu", "db-sink")
    yield
    log_context.set_component(saved["region"], saved["component"])


def test_mysql_login_refused_names_the_section() -> None:
    err = pymysql.err.OperationalError(1045, "Access denied for user 'cdcsync'@'localhost' (using password: YES)")
    message, code = describe(err)
    assert code == 1 and "\n" not in message
    assert message.startswith("MySQL refused the login (1045: Access denied")
    assert "[regions.eu.mysql]" in message and "password" in message


def test_mysql_unreachable() -> None:
    err = pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] refused)")
    message, _ = describe(err)
    assert message.startswith("cannot reach MySQL (2003:") and "`host`/`port` in [regions.eu.mysql]" in message


def test_redis_auth_and_connection() -> None:
    assert describe(redis.AuthenticationError("invalid username-password pair"))[0].startswith(
        "Redis refused the login (invalid username-password pair): fix `password`")
    assert describe(redis.ResponseError("WRONGPASS invalid username-password pair"))[0].startswith(
        "Redis refused the login")
    message, _ = describe(redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."))
    assert message.startswith("cannot reach Redis (Error 111") and "[regions.eu.redis]" in message


def test_kafka_transport() -> None:
    err = KafkaException(KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9/bootstrap: Connection refused"))
    message, _ = describe(err)
    assert message.startswith("cannot reach Kafka (127.0.0.1:9/bootstrap: Connection refused)")
    assert "`bootstrap` in [kafka] (or [regions.eu.kafka]" in message


def test_fence_refusal_exits_3() -> None:
    assert describe(ProducerFenced("region eu: another producer ...")) == ("region eu: another producer ...",
                                                                          FENCED_EXIT)


def test_unknown_errors_stay_tracebacks() -> None:
    assert describe(pymysql.err.OperationalError(1213, "Deadlock found")) is None
    assert describe(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))) is None
    assert describe(ValueError("bug")) is None


def test_lock_name_fits_the_server_limit() -> None:
    assert lock_name("cdc", "eu") == "cdcsync.producer.cdc.eu"
    assert len(lock_name("p" * 80, "eu")) == 64


def _raising_main(monkeypatch, err: BaseException, argv: list[str]) -> None:
    def app(args, prog_name):
        assert "--debug" not in args
        raise err

    monkeypatch.setattr(cli, "app", app)
    cli.main(argv)


def test_main_prints_one_line(monkeypatch, capsys) -> None:
    monkeypatch.delenv("CDCSYNC_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        _raising_main(monkeypatch, pymysql.err.OperationalError(1045, "Access denied"), ["consumer"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: MySQL refused the login")


def test_debug_keeps_the_traceback(monkeypatch) -> None:
    with pytest.raises(pymysql.err.OperationalError):
        _raising_main(monkeypatch, pymysql.err.OperationalError(1045, "Access denied"), ["consumer", "--debug"])
