"""The sandbox's durable option: MariaDB fsyncs the redo log and the binlog at every commit, and a
sandbox keeps the setting it was started with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.local import Sandbox, SandboxError
from deploy.local.mariadb import MariaDBSpec, render_cnf


def _settings(cnf: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in cnf.splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs if k.strip() in ("sync_binlog", "innodb_flush_log_at_trx_commit")}


def test_durable_renders_fsync_at_every_commit(tmp_path: Path) -> None:
    spec = MariaDBSpec(home=tmp_path, port=1, server_id=1, gtid_domain_id=1)
    assert _settings(render_cnf(spec)) == {"sync_binlog": "0", "innodb_flush_log_at_trx_commit": "2"}
    durable = MariaDBSpec(home=tmp_path, port=1, server_id=1, gtid_domain_id=1, durable=True)
    assert _settings(render_cnf(durable)) == {"sync_binlog": "1", "innodb_flush_log_at_trx_commit": "1"}


def test_a_sandbox_keeps_the_durability_it_was_started_with(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"regions": {"eu": {}}, "durable": False}))
    with pytest.raises(SandboxError, match="started with durable=False"):
        Sandbox(tmp_path, durable=True).up(["eu"])
    assert Sandbox(tmp_path).durable is False
    (tmp_path / "state.json").write_text(json.dumps({"regions": {"eu": {}}, "durable": True}))
    assert Sandbox(tmp_path).durable is True


def test_sandbox_up_durable_reaches_the_sandbox(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cdcsync.cli import app

    (tmp_path / "state.json").write_text(json.dumps({"regions": {"eu": {}}, "durable": False}))
    result = CliRunner().invoke(app, ["sandbox", "up", "--regions", "eu", "--durable", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "started with durable=False" in result.output, result.output
