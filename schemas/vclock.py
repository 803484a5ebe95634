"""Vector clocks carried by change events (filled in by the conflict-resolution layer)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class VectorClock(BaseModel):
    """Region -> counter, plus a hybrid-logical timestamp in µs that never goes backwards in a region."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    counters: dict[str, int] = Field(default_factory=dict)
    hlc_us: int = 0
