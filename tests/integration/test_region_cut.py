"""A region cut off from the others and healed (tests/support/convergence/region_cut.py,
docs/reliability.md): the mixed workload runs while one region's components lose the broker, both
directions, for 20-30 s, starting in the middle of the delivery of two large multi-table
transactions (the cut region's own, and the next region's); after the heal, the checker's verdict
is the one without faults: no acknowledged write lost or applied twice, databases identical, caches
equal to them, no dead letter unexplained.

The broker of this test is its own (memory storage, a second or two to start), advertising the
proxy in front of it; MariaDB and Redis are the session sandbox's. Longer cuts:
`make soak NEMESIS=cut-region,cut-region-mid-txn` (minutes each, docs/reliability.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.local import Sandbox
from schemas.config import PipelineConfig
from tests.support.convergence.nemesis import schedule
from tests.support.convergence.region_cut import BrokerFront, fronted_broker
from tests.support.convergence.run import run_seed
from tests.support.convergence.shapes import parse_shapes

pytestmark = pytest.mark.integration


@pytest.fixture
def front(tmp_path: Path) -> Iterator[BrokerFront]:
    with fronted_broker(tmp_path / "broker") as proxy:
        yield proxy


def test_every_byte_of_a_client_goes_through_the_front_the_broker_advertises(front: BrokerFront) -> None:
    """Not only the bootstrap request: the broker advertises the proxy, so a client's later
    connections (the partition leader's) go through it too, and a cut silences them."""
    admin = AdminClient({"bootstrap.servers": front.bootstrap})
    admin.create_topics([NewTopic("front-check", 1, 1)])["front-check"].result(timeout=30)
    producer = Producer({"bootstrap.servers": front.bootstrap, "message.timeout.ms": 3000})
    delivered: list[object] = []
    for i in range(200):
        producer.produce("front-check", value=b"x" * 1000, key=str(i).encode(),
                         on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(30)
    assert delivered == [None] * 200
    assert front.proxy.counters[None].up > 200 * 1000, f"the messages went around the proxy: {front.proxy.counters}"
    front.proxy.cut("blackhole")
    try:
        producer.produce("front-check", value=b"during the cut", on_delivery=lambda err, msg: delivered.append(err))
        producer.flush(10)
        assert delivered[-1] is not None and "timed out" in str(delivered[-1]).lower(), \
            f"a message reached the broker through the cut: {delivered[-1]}"
    finally:
        front.proxy.heal()


def test_a_region_cut_off_mid_transaction_and_healed_loses_nothing(sandbox: Sandbox, sandbox_config: PipelineConfig,
                                                                   front: BrokerFront, tmp_path: Path) -> None:
    seed = 31
    base = sandbox_config.model_copy(update={"kafka": sandbox_config.kafka.model_copy(
        update={"bootstrap": front.bootstrap})})
    faults = schedule(seed, ("cut-region-mid-txn",), list(base.regions), count=1, span_s=6.0, cut_s=(20.0, 30.0))
    # Writes go on in every region during most of the cut (about 30 s of workload): each side of the
    # partition writes keys the other writes too, and the conflicts resolve after the heal.
    result = run_seed(base, seed, topology="mesh", shapes=parse_shapes(""), tmp=tmp_path / "seed",
                      txns_per_client=55, pause_ms=900, faults=faults, sandbox=sandbox, front=front)
    summary = json.dumps(result.summary())
    print(summary)
    print(json.dumps(result.faults))
    schedule_text = "\n".join(f.describe() for f in faults)
    assert result.ok, f"{result.report}\nfaults injected: {json.dumps(result.faults)}\nschedule:\n{schedule_text}"
    assert result.fault_counts() == {"cut-region-mid-txn": 1}, f"the cut was not injected: {result.faults}"
    note = result.faults[0]["note"]
    assert "cut mid-delivery" in note, f"the cut did not meet a transaction partly delivered: {note}"
    assert " 0 connections cut" not in note, f"the region had no connection to cut: {note}"
    counters = front.proxy.counters
    cut = faults[0].target
    assert all(counters[r].connections > 0 and counters[r].down > 100_000 for r in base.regions), \
        f"some region's components did not go through the proxy: {counters}"
    assert result.history.acks, "the workload acknowledged nothing: it proves nothing"
    assert any(a.shape == "bigtxn" for a in result.history.acks), "the big transactions were not acknowledged"
