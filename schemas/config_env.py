"""Environment variables that override config settings.

Naming rule: `CDCSYNC_` + the setting's key path, segments joined by `__`, in any case:

    CDCSYNC_PREFIX=shop                              -> prefix
    CDCSYNC_KAFKA__BOOTSTRAP=kafka:9092              -> kafka.bootstrap
    CDCSYNC_REGIONS__EU__MYSQL__PASSWORD=...         -> regions.eu.mysql.password
    CDCSYNC_REGIONS__EU__MYSQL__PASSWORD_FILE=/run/secrets/eu-mysql
    CDCSYNC_KAFKA__EXTRA__SASL_PASSWORD=...          -> kafka.extra."sasl.password"

Keys of `kafka.extra`/`kafka.extra_files` are librdkafka names: write `_` for `.` (an existing key
is matched either way). Region and table keys are matched case-insensitively. A value that is a
JSON array or object (`["shop.*"]`) is parsed as JSON; anything else is passed as text and
validated like the file's value. Variables without `__` that name no top-level setting
(`CDCSYNC_CONFIG`, `CDCSYNC_REGION`, ...) are command-line options, not settings, and are ignored.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, get_args, get_origin

import orjson
from pydantic import BaseModel

PREFIX = "CDCSYNC_"
SEPARATOR = "__"
# dict settings whose keys are librdkafka names (dots), written with `_` in variable names.
_LIBRDKAFKA_MAPS = {"extra", "extra_files"}


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's annotation (`X`, `X | None`, `dict[str, X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_of(arg)
        if found is not None:
            return found
    return None


def _is_mapping(annotation: Any) -> bool:
    if get_origin(annotation) is dict:
        return True
    return any(_is_mapping(arg) for arg in get_args(annotation))


def _value(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
    return text


def _dict_key(existing: dict[str, Any], segment: str, librdkafka: bool) -> str:
    wanted = segment.lower()
    for key in existing:
        if key.lower() == wanted or (librdkafka and key.lower().replace(".", "_") == wanted):
            return key
    return wanted.replace("_", ".") if librdkafka else wanted


def apply_env(data: dict[str, Any], model: type[BaseModel],
              environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """`data` (raw config) with every CDCSYNC_ variable applied, and which key each one set
    (key path -> variable name, so validation errors can say where a bad value came from)."""
    result = copy.deepcopy(data)
    sources: dict[str, str] = {}
    for name in sorted(environ):
        if not name.upper().startswith(PREFIX):
            continue
        segments = name[len(PREFIX):].split(SEPARATOR)
        if any(not s for s in segments):
            continue
        if len(segments) == 1:
            field = model.model_fields.get(segments[0].lower())
            if field is None or model_of(field.annotation) or _is_mapping(field.annotation):
                continue  # a command-line option's variable, not a setting
        path = _set(result, model, segments, _value(environ[name]))
        sources[".".join(path)] = name
    return result, sources


def _set(node: dict[str, Any], model: type[BaseModel] | None, segments: list[str], value: Any) -> list[str]:
    """Set `value` at `segments` below `node` (a model's data); returns the key path it set."""
    key = segments[0].lower()
    field = model.model_fields.get(key) if model is not None else None
    if len(segments) == 1:
        node[key] = value
        return [key]
    annotation = field.annotation if field is not None else None
    child = node.get(key)
    if not isinstance(child, dict):
        child = node[key] = {}
    if annotation is not None and _is_mapping(annotation):
        entry = _dict_key(child, segments[1], librdkafka=key in _LIBRDKAFKA_MAPS)
        if len(segments) == 2:
            child[entry] = value
            return [key, entry]
        inner = child.get(entry)
        if not isinstance(inner, dict):
            inner = child[entry] = {}
        return [key, entry, *_set(inner, model_of(annotation), segments[2:], value)]
    # A nested model, or an unknown key: the model's `extra="forbid"` names the latter.
    return [key, *_set(child, model_of(annotation) if annotation is not None else None, segments[1:], value)]
