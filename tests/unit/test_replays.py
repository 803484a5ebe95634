"""The replay rule (consumers/db/replays.py): skip only what is provably applied."""

from __future__ import annotations

import pytest

from common.metadata_tables import Marker
from consumers.db.replays import Reset, SourceHistoryError, gtid_position, verdict
from schemas.events import ChangeEvent


def change(gtid: str | None = "0-1-10", index: int = 0, epoch: str | None = "e1", region: str = "eu") -> ChangeEvent:
    return ChangeEvent(region=region, origin=region, server_id=1, gtid=gtid, binlog_file="b.000001", binlog_pos=4,
                       txn_id=gtid or "s", ts_us=0, db="app", table="t", txn_index=index, txn_last=True,
                       op="update", pk={"id": 1}, before=None, after={"id": 1}, types={"id": "int"}, epoch=epoch)


MARKER = Marker(offset=100, gtid="0-1-10", txn_index=2, epoch="e1", topic_id="T1")


def judge(event: ChangeEvent, offset: int, marker: Marker | None = MARKER, own_region: bool = True,
          topic_id: str | None = "T1"):
    return verdict(event, offset, marker, own_region=own_region, topic_id=topic_id)


def test_positions_keep_the_server_id_in_the_history() -> None:
    assert gtid_position("0-1-10", 2) == ("0-1", 10, 2)
    assert gtid_position("3-77-5", 0) == ("3-77", 5, 0)
    assert gtid_position("3e11fa47-71ca-11e1-9e33-c80aa9429562:23", 1) == ("3e11fa47-71ca-11e1-9e33-c80aa9429562", 23, 1)
    assert gtid_position(None, 0) is None and gtid_position("0-1-1", None) is None


def test_no_marker_nothing_applied() -> None:
    assert judge(change(), 0, None).applied is False


def test_a_producer_redelivery_in_one_history_is_a_replay() -> None:
    assert judge(change("0-1-10", 2), 101).applied            # the same event at a new offset
    assert judge(change("0-1-9", 5), 150).applied
    assert not judge(change("0-1-10", 3), 101).applied        # the next row of the same transaction
    assert judge(change("0-1-11", 0), 101) == judge(change("0-1-11", 0), 101)
    assert not judge(change("0-1-11", 0), 101).applied


def test_a_reset_source_is_never_a_replay() -> None:
    # RESET MASTER: sequences restart, the producer's fresh checkpoint has a new epoch.
    found = judge(change("0-1-1", 0, epoch="e2"), 101)
    assert (found.applied, found.reset) == (False, Reset.EPOCH)
    # A producer without epochs (older version): GTIDs prove nothing, the offset decides.
    assert not judge(change("0-1-1", 0, epoch=None), 101).applied


def test_a_failover_that_reuses_sequences_is_never_a_replay() -> None:
    found = judge(change("0-2-7", 0), 101)                    # same domain, another server id, lower sequence
    assert (found.applied, found.reset) == (False, Reset.SERVER)
    found = judge(change("0-2-11", 0), 101)                   # a clean failover continues the sequence
    assert (found.applied, found.reset) == (False, None)
    assert not judge(change("1-1-3", 0), 101).applied          # another domain: not comparable


def test_offsets_at_or_below_the_marker() -> None:
    assert judge(change("0-1-10", 2), 100).applied             # the consumer's own replay
    assert judge(change("0-1-4", 0), 7).applied
    # A newer GTID of the same history at a lower offset: the topic restarted (recreated, broker restarted).
    found = judge(change("0-1-12", 0), 3, topic_id="T2")
    assert (found.applied, found.reset) == (False, Reset.OFFSETS)
    found = judge(change("0-1-12", 0), 3, topic_id="T1")
    assert (found.applied, found.reset) == (False, Reset.OFFSETS)


def test_offsets_without_a_comparable_history_trust_the_topic_id() -> None:
    older_epoch = change("0-1-4", 0, epoch="e0")
    assert judge(older_epoch, 90).applied                      # same topic incarnation: a replay
    found = judge(older_epoch, 90, topic_id="T2")
    assert (found.applied, found.reset) == (False, Reset.TOPIC)
    snapshot = change(None, 0, epoch=None)
    assert judge(snapshot, 90).applied
    assert not judge(snapshot, 90, topic_id="T9").applied
    # A star hub's forwarded version: never compared by GTID.
    assert judge(change("0-1-50", 0), 90, own_region=False).applied
    assert not judge(change("0-1-5", 0), 101, own_region=False).applied


def test_an_offset_nothing_can_prove_stops() -> None:
    with pytest.raises(SourceHistoryError, match="neither the source history"):
        judge(change("0-1-4", 0, epoch="e0"), 90, topic_id=None)
    with pytest.raises(SourceHistoryError):
        judge(change(None, 0, epoch=None), 90, Marker(100), topic_id="T1")   # a marker written before topic ids


def test_the_cache_sink_reports_a_new_producer_epoch(caplog) -> None:
    from prometheus_client import CollectorRegistry

    from consumers.cache.sink import CacheSink
    from consumers.metrics import SinkMetrics
    from consumers.records import SourceRecord
    from schemas.config import parse_config

    config = parse_config({"regions": {"eu": {"server_id": 1}, "us": {"server_id": 2}}})
    sink = CacheSink(config, "eu", SinkMetrics("eu", CollectorRegistry()))
    for offset, epoch in enumerate(["e1", "e1", None, "e2"]):
        record = SourceRecord("cdcsync.eu.app.t", 0, offset, b"[1]", b"", change(epoch=epoch), None)
        sink._check_epoch(record, record.event)  # type: ignore[arg-type]
    assert sink.metrics.source_resets.labels("eu", "cache", "epoch_changed")._value.get() == 1
    assert "cdcsync cache rebuild" in caplog.text
    sink.close()


def test_a_marker_without_a_topic_id_proves_no_offset_and_says_why() -> None:
    """An older sink wrote markers with no topic id when the id lookup went unanswered (docs/reliability.md).
    Such a marker's offset may belong to an earlier incarnation of the topic: a replay at or below it
    cannot be proven, and the error says the marker lacks the id."""
    old = Marker(offset=6, gtid="0-1-10", txn_index=0, epoch="e1", topic_id=None)
    with pytest.raises(SourceHistoryError, match=r"the marker has no topic id .* \(id T1 now\)"):
        judge(change("0-1-9", 0), 5, old, own_region=False, topic_id="T1")   # a star hub's forwarded version
    assert not judge(change("0-1-11", 0), 7, old, own_region=False, topic_id="T1").applied   # above it: new
    assert judge(change("0-1-9", 0), 5, old, topic_id="T1").applied          # the source history still proves


class _Ids:
    """A topic id lookup that gives scripted answers (an exception is raised)."""

    def __init__(self, *answers) -> None:
        self.answers, self.asked = list(answers), []

    def get(self, topic: str, *, fresh: bool = False):
        self.asked.append(fresh)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _sink(ids: _Ids):
    from prometheus_client import CollectorRegistry

    from consumers.db.sink import DatabaseSink
    from consumers.metrics import SinkMetrics
    from schemas.config import parse_config

    config = parse_config({"regions": {"eu": {"server_id": 1}, "us": {"server_id": 2}}})
    return DatabaseSink(config, "us", None, SinkMetrics("us", CollectorRegistry()), topic_ids=ids)  # type: ignore[arg-type]


def _run(offset: int):
    from consumers.db.sink import _Run
    from consumers.records import SourceRecord
    from schemas.codec import encode

    event = change("0-1-20", 0).model_dump(mode="json")
    record = SourceRecord.from_message("cdcsync.eu.app.t", 0, offset, b"[1]", encode(event))
    return _Run("cdcsync.eu.app.t", 0, "eu", [record])


def test_the_sink_never_keeps_a_marker_topic_id_it_failed_to_read() -> None:
    from common.retry import is_transient
    from consumers.topic_ids import TopicIdUnavailable

    # No answer: the error reaches the sink's retry (the batch rolls back), no marker id is made up.
    sink = _sink(_Ids(TopicIdUnavailable("no answer")))
    with pytest.raises(TopicIdUnavailable) as raised:
        sink._unapplied(_run(101), MARKER)
    assert is_transient(raised.value)
    # The cluster says "no id" for a topic whose marker has one: asked again now, then not trusted.
    ids = _Ids(None, None)
    with pytest.raises(TopicIdUnavailable, match="marker has T1"):
        _sink(ids)._unapplied(_run(101), MARKER)
    assert ids.asked == [False, True]
    ids = _Ids(None, "T1")                   # a stale cached "no id", corrected by a fresh answer
    kept, topic_id = _sink(ids)._unapplied(_run(101), MARKER)
    assert topic_id == "T1" and len(kept) == 1
