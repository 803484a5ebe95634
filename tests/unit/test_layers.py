"""The layering of issue 12, enforced: `lint-imports` checks the import-linter contracts in
pyproject.toml ([tool.importlinter]: layers cdcsync > producers | consumers > common > schemas,
capture and apply independent, no driver in schemas/, no component importing the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), f"{lint} is missing: install the test extras (`make deps`)"
    # --no-cache: a stale cache could report a layer crossing that is gone, or miss a new one.
    run = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"import contracts broken (lint-imports rc {run.returncode}):\n{run.stdout}{run.stderr}"
    assert "0 broken" in run.stdout, run.stdout
