"""Secrets in the config: read from files (`*_file` settings), kept as SecretStr, revealed only on purpose.

A secret is held as a pydantic `SecretStr` from validation on, so `repr()`, `config show`, logs and
exception messages print `**********`. Code that needs the value calls `get_secret_value()` at the
last moment (the client constructor). `plain_data` is the one deliberate exception: it dumps a
config with every secret revealed, for writing it back to a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

# librdkafka settings whose values are credentials; `kafka.extra` holds them as SecretStr.
_SECRET_EXTRA_MARKERS = ("password", "secret", "sasl.oauthbearer.config", "ssl.key.pem", "ssl_key")


def is_secret_extra_key(key: str) -> bool:
    """Whether a librdkafka setting holds a credential (`sasl.password`, `ssl.key.password`, ...)."""
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_EXTRA_MARKERS)


def read_secret_file(path: str | Path, setting: str) -> str:
    """The secret in `path`, without the trailing newline most secret stores add.

    Raises ValueError naming the setting and the OS problem, never the content."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ValueError(f"{setting}: cannot read {path}: {err.strerror or err}") from None
    return text.removesuffix("\n").removesuffix("\r")


def secrets_from_files(data: Any, pairs: dict[str, str]) -> Any:
    """For a model's raw input: each set `<x>_file` in `pairs` (file setting -> secret setting)
    replaces the secret setting with the file's content. The file wins over an inline value, so a
    config dumped and re-read (both set) stays valid."""
    if not isinstance(data, dict):
        return data
    updated = dict(data)
    for file_key, secret_key in pairs.items():
        path = updated.get(file_key)
        if path is not None:
            updated[secret_key] = read_secret_file(path, file_key)
    return updated


def plain_data(model: BaseModel) -> dict[str, Any]:
    """The model as TOML-ready data (no None, paths as text) with every secret REVEALED.

    Only for writing a config file that the same operator could have written; never log it."""
    return _plain(model.model_dump(mode="python", exclude_none=True))


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
