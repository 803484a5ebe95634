"""Wiring of `cdcsync consumer --sink db|cache`: which topics, which group, which sink.

Consumer groups: `<prefix>.<region>.db` reads the source regions' change topics (from the
topology) and applies them to the region's database; `<prefix>.<region>.cache` reads the region's
own change topics and keeps its Redis in step with its database. Start more processes with the
same group to share the partitions; Kafka's group protocol is the only coordinator.
"""

from __future__ import annotations

from typing import Literal

from consumers.dlq import DeadLetterPublisher
from consumers.metrics import SinkMetrics
from consumers.runner import Sink, SinkRunner
from consumers.source import KafkaSource
from producers.topics import TopicCreator, TopicNames, client_settings
from schemas import metadata_tables
from schemas.config import PipelineConfig

SinkKind = Literal["db", "cache"]


def group_id(config: PipelineConfig, region: str, sink: SinkKind) -> str:
    return f"{config.prefix}.{region}.{sink}"


def subscriptions(config: PipelineConfig, region: str, sink: SinkKind) -> list[str]:
    names = TopicNames.of(config)
    sources = config.sources_of(region) if sink == "db" else (region,)
    return [names.change_subscription(source) for source in sources]


def build_sink(config: PipelineConfig, region: str, sink: SinkKind, metrics: SinkMetrics,
               dead_letters: DeadLetterPublisher) -> Sink:
    if sink == "db":
        from consumers.db_sink import DatabaseSink

        return DatabaseSink(config, region, dead_letters, metrics)
    from consumers.cache_sink import CacheSink

    return CacheSink(config, region, metrics)


def build_runner(config: PipelineConfig, region: str, sink: SinkKind, *,
                 metrics: SinkMetrics | None = None) -> SinkRunner:
    settings = config.region(region).sink
    kafka = config.kafka_for(region)
    names = TopicNames.of(config)
    dlq_topic = names.dlq(region)
    TopicCreator(kafka).ensure(dlq_topic)
    if sink == "db":
        from producers.binlog_stream import connect

        with connect(config.region(region).mysql) as conn:
            metadata_tables.ensure(conn, config.meta_db)
    metrics = metrics or SinkMetrics(region)
    dead_letters = DeadLetterPublisher(client_settings(kafka), dlq_topic, region=region, sink=sink)
    target = build_sink(config, region, sink, metrics, dead_letters)
    runner: SinkRunner
    source = KafkaSource(client_settings(kafka), group_id(config, region, sink),
                         session_timeout_ms=settings.session_timeout_ms,
                         on_revoke=lambda partitions: runner.on_revoke(partitions))
    runner = SinkRunner(source=source, sink=target, dead_letters=dead_letters, metrics=metrics,
                        batch_max_events=settings.batch_max_events, batch_max_ms=settings.batch_max_ms)
    source.subscribe(subscriptions(config, region, sink))
    return runner
