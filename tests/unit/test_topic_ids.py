"""The topic id lookup (consumers/topic_ids.py): only an answer is an answer, and only answers are cached.

A fake admin client stands in for the broker: its futures answer, fail or never complete (a stalled
broker). The real-broker side (SIGSTOP around the lookup) is tests/integration/test_topic_id_stall.py."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumers.topic_ids import TopicIds, TopicIdUnavailable

TOPIC = "cdcsync.eu.app.t"


class FakeAdmin:
    """`describe_topics` whose answers are scripted: a topic id, a KafkaError, or None (no reply)."""

    def __init__(self, *answers: str | KafkaError | None) -> None:
        self.answers = list(answers)
        self.asked = 0

    def describe_topics(self, topics, request_timeout: float) -> dict[str, Future]:
        self.asked += 1
        future: Future = Future()
        answer = self.answers.pop(0)
        if isinstance(answer, KafkaError):
            future.set_exception(KafkaException(answer))
        elif answer is not None:
            future.set_result(SimpleNamespace(topic_id=answer))
        return {TOPIC: future}      # None: never completes, as with a stalled broker


def lookup(*answers: str | KafkaError | None) -> tuple[TopicIds, FakeAdmin]:
    ids = TopicIds({}, ttl_s=30.0, timeout_s=0.05)
    ids._admin = admin = FakeAdmin(*answers)
    return ids, admin


def test_an_unanswered_lookup_raises_a_transient_error_and_is_not_cached() -> None:
    ids, admin = lookup(None, "T1")
    with pytest.raises(TopicIdUnavailable, match="no answer from the cluster"):
        ids.get(TOPIC)
    assert isinstance(TopicIdUnavailable("x"), TimeoutError)   # common.retry retries it
    assert ids.get(TOPIC) == "T1"      # asked again at once, within the TTL: the failure was not cached
    assert ids.get(TOPIC) == "T1" and admin.asked == 2        # the answer is cached


def test_an_error_reply_is_not_an_answer_either() -> None:
    ids, admin = lookup(KafkaError(KafkaError._TIMED_OUT), KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART), "T1")
    for _ in range(2):
        with pytest.raises(TopicIdUnavailable):
            ids.get(TOPIC)
    assert ids.get(TOPIC) == "T1" and admin.asked == 3


def test_a_broker_without_topic_ids_answers_none() -> None:
    ids, admin = lookup("AAAAAAAAAAAAAAAAAAAAAA")             # the null id
    assert ids.get(TOPIC) is None
    assert ids.get(TOPIC) is None and admin.asked == 1        # an answer: cached
    ids, _ = lookup(KafkaError(KafkaError.UNSUPPORTED_VERSION))
    assert ids.get(TOPIC) is None


def test_fresh_asks_the_cluster_even_with_a_cached_answer() -> None:
    ids, admin = lookup("T1", None)
    assert ids.get(TOPIC) == "T1"
    with pytest.raises(TopicIdUnavailable):
        ids.get(TOPIC, fresh=True)     # proving a replay: a stale id is not good enough, nor a missing one
    assert admin.asked == 2


def test_a_lookup_still_unanswered_when_the_retries_run_out_is_one_line() -> None:
    from cdcsync.expected_errors import describe

    ids, _ = lookup(None)
    with pytest.raises(TopicIdUnavailable) as raised:
        ids.get(TOPIC)
    message, code = describe(raised.value)
    assert code == 1 and "\n" not in message
    assert message.startswith(f"cannot reach Kafka (topic id of {TOPIC}: no answer from the cluster within 0.05 s")
