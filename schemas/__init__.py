"""The wire contract: change events, vector clocks, conflict records and the pipeline config."""

from schemas.events import ChangeEvent, DdlEvent, Op
from schemas.vclock import VectorClock
from schemas.version import SCHEMA_VERSION, SUPPORTED_VERSIONS

__all__ = ["ChangeEvent", "DdlEvent", "Op", "VectorClock", "SCHEMA_VERSION", "SUPPORTED_VERSIONS"]
