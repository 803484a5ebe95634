"""Bytes on the wire <-> messages. orjson for speed; on the way in, the typed decoder
(schemas/typed_decoder.py) for what producers write, pydantic for everything else and for the errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from schemas import typed_decoder
from schemas.events import MESSAGE_ADAPTER, ChangeEvent, DdlEvent
from schemas.version import SUPPORTED_VERSIONS


class DecodeError(ValueError):
    """A payload that is not a valid cdcsync message. The message says why."""


class UnsupportedSchemaVersion(DecodeError):
    pass


def encode(message: dict[str, Any] | ChangeEvent | DdlEvent) -> bytes:
    if not isinstance(message, dict):
        message = message.model_dump(mode="json")
    return orjson.dumps(message)


def decode(payload: bytes) -> ChangeEvent | DdlEvent:
    """Parse and validate one message; raise DecodeError naming the problem."""
    message = typed_decoder.decode(payload)
    if message is not None:
        return message
    return validated(payload)


def validated(payload: bytes) -> ChangeEvent | DdlEvent:
    """`decode` by pydantic alone: the reference the typed decoder agrees with, and its fallback."""
    try:
        # Fast path: pydantic-core parses and validates the bytes in one pass. It accepts only
        # versions this reader knows; anything else takes the slow path for a precise error.
        message = MESSAGE_ADAPTER.validate_json(payload)
        if message.schema_version in SUPPORTED_VERSIONS:
            return message
    except ValidationError:
        pass
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise DecodeError(f"payload is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise DecodeError(f"payload is a JSON {type(data).__name__}, not an object")
    if "schema_version" not in data:
        keys = ", ".join(sorted(map(str, data))[:5]) or "none"
        raise DecodeError(f"payload is not a cdcsync message: a JSON object without schema_version (keys: {keys})")
    version = data.get("schema_version")
    if not isinstance(version, int) or version not in SUPPORTED_VERSIONS:   # {} or [] would not hash
        raise UnsupportedSchemaVersion(
            f"schema_version {version!r} is not supported (this reader knows {sorted(SUPPORTED_VERSIONS)})")
    try:
        return MESSAGE_ADAPTER.validate_python(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:5])
        raise DecodeError(f"invalid message: {problems}") from None


def canonical_pk(values: Sequence[Any]) -> str:
    """THE text naming a row, everywhere a key is written: the Kafka message key (after the
    `db.table:` prefix of a per-region topic), the last part of the cache key, the Bloom filter
    item, and verify's pairing of rows across regions. Its callers pass the key's wire values in
    key order, text already folded by collation (`key_fold.key_values`).

    Format (on the wire since schema_version 1; changing it orphans every Kafka key and cache
    entry written before): a compact JSON array, as orjson writes it: no spaces, non-ASCII text as
    raw UTF-8 (no `\\u` escapes), integers as digits, binary values as their wire base64 text.
    `[42]`, `[1,"a"]`, `["é"]`, `["AP8="]`."""
    return orjson.dumps(values if isinstance(values, list) else list(values)).decode()


def canonical_pk_bytes(values: list[Any]) -> bytes:
    """`canonical_pk(values).encode()`, without the round trip through str (the producer's hot path)."""
    return orjson.dumps(values)
