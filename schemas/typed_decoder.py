"""The sinks' fast decoder: msgspec parses and type-checks a message in one pass, and the result is
handed over as the pydantic models of schemas/events.py, built without validating them a second time.

The models stay the contract. This decoder accepts only a strict subset of what they accept: the
exact JSON types the producers write. Anything else, a value pydantic would coerce (`"1"` for an
int), a missing or unknown-kind field, an unsupported `schema_version`, a clock with a negative
counter, or `heads` (resolved versions are rare; pydantic validates their images), makes `decode`
return None, and the caller (schemas/codec.py) decodes with pydantic, which accepts it or names the
problem exactly as before. tests/unit/test_typed_decoder.py pins that both give equal models,
fields set included, for every event shape.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from schemas.events import ChangeEvent, DdlEvent, Op
from schemas.vclock import VectorClock
from schemas.version import SCHEMA_VERSION, SUPPORTED_VERSIONS

_UNSET: Any = msgspec.UNSET


class _Clock(msgspec.Struct, forbid_unknown_fields=True):
    counters: dict[str, int] = _UNSET
    hlc_us: int = _UNSET


# Field names, order and defaults mirror schemas/events.py (pinned by the test); UNSET marks a field
# the payload left out, so the model's fields set is the same as pydantic's.
class _Change(msgspec.Struct, kw_only=True):
    schema_version: int = _UNSET
    region: str
    origin: str
    server_id: int
    gtid: str | None
    binlog_file: str
    binlog_pos: int
    txn_id: str
    ts_us: int
    db: str
    table: str
    epoch: str | None = _UNSET
    kind: Literal["change"]
    txn_index: int
    txn_last: bool
    op: Op
    pk: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    types: dict[str, str]
    pk_fold: dict[str, str] | None = _UNSET
    vclock: _Clock | None = _UNSET
    heads: Any = _UNSET
    version_origin: str | None = _UNSET


class _Ddl(msgspec.Struct, kw_only=True):
    schema_version: int = _UNSET
    region: str
    origin: str
    server_id: int
    gtid: str | None
    binlog_file: str
    binlog_pos: int
    txn_id: str
    ts_us: int
    db: str
    table: str | None
    epoch: str | None = _UNSET
    kind: Literal["ddl"]
    statement: str
    partitions: int | None = _UNSET


# Changes are nearly every message: try them first, DDL only when that fails.
_CHANGE = msgspec.json.Decoder(_Change)
_DDL = msgspec.json.Decoder(_Ddl)
_DEFAULTS = {"schema_version": SCHEMA_VERSION, "epoch": None, "pk_fold": None, "vclock": None, "heads": None,
             "version_origin": None, "partitions": None}
_CHANGE_REQUIRED = frozenset(ChangeEvent.model_fields) - _DEFAULTS.keys()
_DDL_REQUIRED = frozenset(DdlEvent.model_fields) - _DEFAULTS.keys()


def _built(cls: type, values: dict[str, Any], fields_set: set[str]) -> Any:
    """A model instance from values already checked: what pydantic's `model_construct` does, less
    its per-field default handling (values holds every field)."""
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", fields_set)
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def _fields(message: msgspec.Struct, required: frozenset[str]) -> tuple[dict[str, Any], set[str]]:
    """The model's `__dict__` (in its field order) and its fields set."""
    values = msgspec.structs.asdict(message)
    fields_set = set(required)
    for name, default in _DEFAULTS.items():
        if name in values:
            if values[name] is _UNSET:
                values[name] = default
            else:
                fields_set.add(name)
    return values, fields_set


def _clock(clock: _Clock) -> VectorClock | None:
    """The VectorClock pydantic would build (counters canonical: sorted, zeros dropped), or None
    when pydantic would refuse it."""
    counters = {} if clock.counters is _UNSET else clock.counters
    if min(counters.values(), default=0) < 0 or (clock.hlc_us is not _UNSET and clock.hlc_us < 0):
        return None
    fields_set = {name for name in ("counters", "hlc_us") if getattr(clock, name) is not _UNSET}
    return _built(VectorClock, {"counters": {r: counters[r] for r in sorted(counters) if counters[r] > 0},
                                "hlc_us": 0 if clock.hlc_us is _UNSET else clock.hlc_us}, fields_set)


def decode(payload: bytes) -> ChangeEvent | DdlEvent | None:
    """The message, or None when this decoder cannot vouch for it (the caller then uses pydantic)."""
    try:
        message: _Change | _Ddl = _CHANGE.decode(payload)
    except msgspec.MsgspecError:
        try:
            message = _DDL.decode(payload)
        except msgspec.MsgspecError:
            return None
    if (SCHEMA_VERSION if message.schema_version is _UNSET else message.schema_version) not in SUPPORTED_VERSIONS:
        return None
    if isinstance(message, _Ddl):
        return _built(DdlEvent, *_fields(message, _DDL_REQUIRED))
    heads, vclock = message.heads, message.vclock
    if heads is not _UNSET and heads is not None:
        return None
    values, fields_set = _fields(message, _CHANGE_REQUIRED)
    if vclock is not _UNSET and vclock is not None:
        clock = _clock(vclock)
        if clock is None:
            return None
        values["vclock"] = clock
    return _built(ChangeEvent, values, fields_set)
