"""Errors an operator causes and can fix, as one line that names the fix (`cdcsync --debug` shows the traceback).

`describe()` is the one place that knows them: a refused MySQL login or an unreachable server,
Redis refusing the password or the connection, a Kafka cluster nobody answers at, and the producer
fence. Anything it does not know stays a traceback: an unexpected error is a bug to report.
"""

from __future__ import annotations

import pymysql
import redis
from confluent_kafka import KafkaError, KafkaException

from common import log_context

# Exit code of a producer that another producer of its region fences out (the supervisor waits on it).
FENCED_EXIT = 3

_MYSQL_LOGIN = {1044, 1045, 1698}        # access denied (to a database, for a user/password, by plugin)
_MYSQL_UNREACHABLE = {2002, 2003, 2005, 2013}   # socket, TCP, unknown host, lost during the handshake
_KAFKA_UNREACHABLE = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
                      KafkaError._RESOLVE}


def _section(kind: str) -> str:
    region = log_context.current()["region"]
    return f"[regions.{region}.{kind}]" if region not in ("-", "all", "") else f"the {kind} section of the config"


def describe(err: BaseException) -> tuple[str, int] | None:
    """(one-line message naming the fix, exit code) for an expected failure, None for anything else."""
    from producers.fence import ProducerFenced

    if isinstance(err, ProducerFenced):
        return str(err), FENCED_EXIT
    if isinstance(err, pymysql.err.OperationalError) and err.args:
        code, text = err.args[0], str(err.args[-1])
        if code in _MYSQL_LOGIN:
            return (f"MySQL refused the login ({code}: {text}): fix `user`/`password` (or `password_file`, "
                    f"`reader_user`/`reader_password`) in {_section('mysql')}, or the grants on the server"), 1
        if code in _MYSQL_UNREACHABLE:
            return (f"cannot reach MySQL ({code}: {text}): start the server, or fix `host`/`port` in "
                    f"{_section('mysql')}"), 1
    if isinstance(err, redis.AuthenticationError) or (
            isinstance(err, redis.ResponseError) and str(err).startswith(("WRONGPASS", "NOAUTH"))):
        return (f"Redis refused the login ({err}): fix `password` (or `username`, `password_file`) in "
                f"{_section('redis')}"), 1
    if isinstance(err, redis.ConnectionError):
        return f"cannot reach Redis ({err}): start the server, or fix `host`/`port` in {_section('redis')}", 1
    if isinstance(err, KafkaException) and err.args and isinstance(err.args[0], KafkaError):
        kafka_error = err.args[0]
        if kafka_error.code() in _KAFKA_UNREACHABLE:
            return (f"cannot reach Kafka ({kafka_error.str()}): start the broker, or fix `bootstrap` in "
                    f"[kafka] (or {_section('kafka')} where the region has its own cluster)"), 1
    return None
