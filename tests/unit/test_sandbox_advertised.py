"""A sandbox whose broker advertises another port (a proxy in front of it, the region cuts of
docs/reliability.md): the files it writes name that port, so every client goes through the proxy."""

from __future__ import annotations

import json
from pathlib import Path

from deploy.local import Sandbox
from schemas.config import load_config


def state(advertised: int | None) -> dict:
    region = {"server_id": 1, "password": "pw", "mysql": {"port": 3310}, "redis": {"port": 6390}}
    kafka = {"port": 9200, "pid": None, **({"advertised_port": advertised} if advertised else {})}
    return {"regions": {"eu": region}, "kafka": kafka}


def test_the_files_name_the_advertised_port_when_there_is_one(tmp_path: Path) -> None:
    box = Sandbox(tmp_path)
    box._write_contract(state(9300))
    box._write_config(state(9300))
    assert json.loads(box.contract_path.read_text())["kafka"]["bootstrap"] == "127.0.0.1:9300"
    assert load_config(box.config_path).kafka.bootstrap == "127.0.0.1:9300"


def test_without_one_they_name_the_broker_port(tmp_path: Path) -> None:
    box = Sandbox(tmp_path)
    box._write_contract(state(None))
    box._write_config(state(None))
    assert json.loads(box.contract_path.read_text())["kafka"]["bootstrap"] == "127.0.0.1:9200"
    assert load_config(box.config_path).kafka.bootstrap == "127.0.0.1:9200"
