"""Wiring of `cdcsync consumer --sink db|cache`: which topics, which group, which sink.

Consumer groups: `<prefix>.<region>.db` reads the source regions' change topics (from the
topology) and applies them to the region's database; `<prefix>.<region>.cache` reads the region's
own change topics and keeps its Redis in step with its database, and the region's `_schema` topic
(it refreshes a table's cached rows after an ALTER of it). Start more processes with the
same group to share the partitions; Kafka's group protocol is the only coordinator.
"""

from __future__ import annotations

import threading
from typing import Literal

from common import metadata_tables
from common.kafka import TopicCreator, client_settings
from consumers.assignment_watchdog import AssignmentWatchdog
from consumers.dlq import DeadLetterPublisher
from consumers.dlq_limit import DeadLetterLimit
from consumers.metrics import SinkMetrics
from consumers.records import echo_filter
from consumers.runner import Sink, SinkRunner
from consumers.source import KafkaSource
from consumers.unclocked_changes import UnclockedChanges
from schemas.config import KafkaConfig, PipelineConfig
from schemas.topics import TopicNames

SinkKind = Literal["db", "cache"]


def group_id(config: PipelineConfig, region: str, sink: SinkKind) -> str:
    return f"{config.prefix}.{region}.{sink}"


def subscriptions(config: PipelineConfig, region: str, sink: SinkKind) -> list[tuple[KafkaConfig, list[str]]]:
    """Per Kafka cluster to read from, the subscriptions of the sink's consumer there."""
    names = TopicNames.of(config)
    sources = config.sources_of(region) if sink == "db" else (region,)
    by_cluster: dict[str, tuple[KafkaConfig, list[str]]] = {}
    for source in sources:
        cluster = config.source_kafka_for(region, source)
        by_cluster.setdefault(cluster.model_dump_json(), (cluster, []))[1].append(names.change_subscription(source))
        if sink == "cache":   # its DDL: the cache sink refreshes a table's rows after an ALTER
            by_cluster[cluster.model_dump_json()][1].append(names.schema_subscription(source))
    return list(by_cluster.values())


def build_sink(config: PipelineConfig, region: str, sink: SinkKind, metrics: SinkMetrics,
               dead_letters: DeadLetterPublisher, cluster: KafkaConfig | None = None) -> Sink:
    """`cluster`: the Kafka cluster the sink reads from (default: the region's own)."""
    if sink == "db":
        from consumers.db.sink import DatabaseSink
        from consumers.topic_ids import TopicIds

        from consumers.db.conflict_publisher import ConflictPublisher

        local = config.kafka_for(region)
        topic = TopicNames.of(config).conflicts()
        TopicCreator(local).ensure(topic)
        forwarder = None
        if config.topology.mode == "star" and config.topology.hub == region:
            from consumers.db.forwarder import Forwarder

            forwarder = Forwarder(config, region, local, client_settings(local))
        return DatabaseSink(config, region, dead_letters, metrics,
                            conflicts=ConflictPublisher(client_settings(local), topic), forwarder=forwarder,
                            topic_ids=TopicIds(client_settings(cluster or local)))
    from consumers.cache.sink import CacheSink

    return CacheSink(config, region, metrics)


def build_runners(config: PipelineConfig, region: str, sink: SinkKind, *,
                  metrics: SinkMetrics | None = None) -> list[SinkRunner]:
    """One runner per Kafka cluster the sink reads from (one, unless regions have their own
    clusters and the sink reads them directly). Each runner owns its consumer and its sink."""
    settings = config.region(region).sink
    local = config.kafka_for(region)
    dlq_topic = TopicNames.of(config).dlq(region)
    TopicCreator(local).ensure(dlq_topic)
    if sink == "db":
        from common.mysql import connect

        with connect(config.region(region).mysql) as conn:
            metadata_tables.ensure(conn, config.meta_db)
    metrics = metrics or SinkMetrics(region)
    runners = []
    for cluster, patterns in subscriptions(config, region, sink):
        dead_letters = DeadLetterPublisher(client_settings(local), dlq_topic, region=region, sink=sink)
        dead_letters.limit = DeadLetterLimit(settings.max_consecutive_dead_letters, region=region, sink=sink)
        target = build_sink(config, region, sink, metrics, dead_letters, cluster)
        source = KafkaSource(client_settings(cluster), group_id(config, region, sink),
                             session_timeout_ms=settings.session_timeout_ms,
                             on_revoke=lambda partitions, i=len(runners): runners[i].on_revoke(partitions),
                             discard=echo_filter(config, region) if sink == "db" else None)
        runners.append(SinkRunner(source=source, sink=target, dead_letters=dead_letters, metrics=metrics,
                                  batch_max_events=settings.batch_max_events, batch_max_ms=settings.batch_max_ms,
                                  batch_linger_ms=settings.batch_linger_ms,
                                  commit_interval_ms=settings.commit_interval_ms,
                                  busy_batch_events=settings.busy_batch_events))
        runners[-1].unclocked = UnclockedChanges(config, sink, metrics)
        runners[-1].watchdog = AssignmentWatchdog.for_session(
            settings.session_timeout_ms, what=f"{sink} sink of region {region}", group=source.group_id,
            progress=source.group_progress)
        source.subscribe(patterns)
    return runners


def run_all(runners: list[SinkRunner]) -> None:
    """Run the runners until each is asked to stop: the first on this thread, the others on their
    own threads (each runner's consumer and sink stay on one thread). A runner that fails stops
    the others, and its error is raised here once they have stopped."""
    failures: list[BaseException] = []

    def run(runner: SinkRunner) -> None:
        try:
            runner.run()
        except BaseException as err:
            failures.append(err)
            for other in runners:
                other.request_stop()

    threads = [threading.Thread(target=run, args=(r,), name=f"sink-{i}", daemon=True)
               for i, r in enumerate(runners[1:], 1)]
    for thread in threads:
        thread.start()
    try:
        run(runners[0])
    finally:
        for runner in runners[1:]:
            runner.request_stop()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
