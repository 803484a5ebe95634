"""JSON Schema of every message type, generated from the pydantic models (for non-Python readers)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas.events import ChangeEvent, DdlEvent
from schemas.version import SCHEMA_VERSION

MESSAGE_TYPES: dict[str, type[BaseModel]] = {"change_event": ChangeEvent, "ddl_event": DdlEvent}


def message_schemas() -> dict[str, dict[str, Any]]:
    result = {}
    for name, model in MESSAGE_TYPES.items():
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://cdcsync.dev/schemas/v{SCHEMA_VERSION}/{name}.json"
        schema["x-cdcsync-schema-version"] = SCHEMA_VERSION
        result[name] = schema
    return result
