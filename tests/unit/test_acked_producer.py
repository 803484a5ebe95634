"""A sink's acknowledged publishing (common/acked_producer.py) against a broker that does not answer
(a listener that never replies: a stalled or partitioned broker): it raises BrokerUnreachable, a
TimeoutError the sinks' retry counts as transient (the batch is rolled back and run again), not a
RuntimeError that stops the sink. Found by the nemesis: a star hub's database sink exited when its
region was cut off for 90 s (docs/reliability.md)."""

from __future__ import annotations

import socket

from confluent_kafka import KafkaError

from common.acked_producer import AckedProducer, BrokerUnreachable, Outgoing, _timed_out
from common.retry import is_transient


def test_a_silent_broker_is_a_transient_error_naming_what_was_published() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:       # accepts (the kernel does), never answers
        port = silent.getsockname()[1]
        producer = AckedProducer({"bootstrap.servers": f"127.0.0.1:{port}"}, "forwarding to eu's topics")
        try:
            producer.send([Outgoing("t", b"v", b"k")], timeout=1.0)
        except Exception as err:  # noqa: BLE001 - the type is the assertion
            raised = err
        else:
            raise AssertionError("a send without any acknowledgement returned")
    assert isinstance(raised, BrokerUnreachable), f"{type(raised).__name__}: {raised}"
    assert is_transient(raised)
    assert str(raised) == ("forwarding to eu's topics: 1 messages not acknowledged by the broker within 1 s "
                           "(stalled or unreachable)")


def test_only_timeouts_count_as_unreachable() -> None:
    assert _timed_out(KafkaError(KafkaError._MSG_TIMED_OUT))
    assert _timed_out(KafkaError(KafkaError._TRANSPORT))
    assert not _timed_out(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert not _timed_out(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
