"""The nemesis refuses, before a seed starts, a fault its setting cannot inject honestly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.convergence.nemesis import KINDS, Fault, Nemesis


def test_kill_mariadb_needs_a_durable_sandbox(tmp_path: Path) -> None:
    faults = [Fault(1.0, "kill-mariadb", "eu", 1.0)]
    with pytest.raises(ValueError, match="kill-mariadb needs a durable sandbox"):
        Nemesis(SimpleNamespace(durable=False), tmp_path / "c.toml", {}, faults)  # type: ignore[arg-type]
    Nemesis(SimpleNamespace(durable=True), tmp_path / "c.toml", {}, faults)     # type: ignore[arg-type]


def test_kill_bloom_needs_the_bloom_maintainers(tmp_path: Path) -> None:
    faults = [Fault(1.0, "kill-bloom", "eu", 1.0)]
    with pytest.raises(ValueError, match="kill-bloom needs the seed's Bloom maintainers"):
        Nemesis(SimpleNamespace(durable=False), tmp_path / "c.toml", {"producer-eu": None}, faults)  # type: ignore[arg-type]
    Nemesis(SimpleNamespace(durable=False), tmp_path / "c.toml", {"bloom-eu": None}, faults)  # type: ignore[arg-type]


def test_the_new_kinds_are_schedulable() -> None:
    assert {"kill-mariadb", "kill-bloom"} <= set(KINDS)
