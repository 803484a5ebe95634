"""The wire contract and the config, importing no database, Kafka or Redis driver: change events,
messages and headers, topic names, binlog positions, the checkpoint record, vector clocks, conflict
records, wire values, and the pipeline config. The bottom layer: it imports no other package of ours."""

from schemas.events import ChangeEvent, DdlEvent, Op
from schemas.vclock import VectorClock
from schemas.version import SCHEMA_VERSION, SUPPORTED_VERSIONS

__all__ = ["ChangeEvent", "DdlEvent", "Op", "VectorClock", "SCHEMA_VERSION", "SUPPORTED_VERSIONS"]
