"""`cdcsync schema export` writes the JSON Schema of every message type, from the pydantic models."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cdcsync.cli import app


def test_export_to_directory(tmp_path) -> None:
    result = CliRunner().invoke(app, ["schema", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    change = json.loads((tmp_path / "change_event.schema.json").read_text())
    ddl = json.loads((tmp_path / "ddl_event.schema.json").read_text())
    assert change["x-cdcsync-schema-version"] == 1 and "v1/change_event" in change["$id"]
    for field in ("schema_version", "region", "origin", "gtid", "txn_id", "txn_index", "txn_last", "ts_us", "op",
                  "pk", "before", "after", "types", "vclock"):
        assert field in change["properties"], field
    assert set(change["$defs"]["Op"]["enum"]) == {"insert", "update", "delete", "truncate", "snapshot"}
    assert "statement" in ddl["properties"] and "statement" in ddl["required"]


def test_export_to_stdout() -> None:
    result = CliRunner().invoke(app, ["schema", "export"])
    assert result.exit_code == 0
    assert set(json.loads(result.output)) == {"change_event", "ddl_event"}
