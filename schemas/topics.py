"""The topic naming contract: every topic name cdcsync uses, in one place."""

from __future__ import annotations

from schemas.config import PipelineConfig


class TopicNames:
    """Every topic name cdcsync uses, in one place."""

    def __init__(self, prefix: str, topic_mode: str = "per_table") -> None:
        self.prefix = prefix
        self.mode = topic_mode

    @classmethod
    def of(cls, config: PipelineConfig) -> "TopicNames":
        return cls(config.prefix, config.topic_mode)

    def changes(self, region: str, db: str, table: str) -> str:
        if self.mode == "per_region":
            return f"{self.prefix}.{region}.changes"
        return f"{self.prefix}.{region}.{db}.{table}"

    def schema(self, region: str) -> str:
        return f"{self.prefix}.{region}._schema"

    def schema_subscription(self, region: str) -> str:
        """The region's `_schema` topic as a regex: subscribing to it before its first DDL created it
        is no error (a plain topic name that does not exist yet is reported on every poll)."""
        return "^" + self.schema(region).replace(".", r"\.") + "$"

    def dlq(self, region: str) -> str:
        return f"{self.prefix}.{region}.dlq"

    def conflicts(self) -> str:
        return f"{self.prefix}.conflicts"

    def change_subscription(self, region: str) -> str:
        """What a consumer subscribes to for `region`'s change topics: a regex (librdkafka's has no
        look-ahead, so it relies on `<db>.<table>` holding exactly one dot), or the one topic."""
        if self.mode == "per_region":
            return self.changes(region, "", "")
        escaped = f"{self.prefix}.{region}".replace(".", r"\.")
        return f"^{escaped}\\.[^.]+\\.[^.]+$"
