"""The nemesis on the convergence checker (tests/support/convergence/nemesis.py, docs/reliability.md):
the mixed workload under a short seeded schedule of real faults, `kill -9` of a producer and of a
database sink (restarted a second later), the broker stalled with SIGSTOP and a region's MariaDB
restarted under load, and the same verdict
as without faults: no acknowledged write lost or applied twice, databases identical, caches equal to
them, no dead letter unexplained. The assertion message is the checker's report and the faults.

Longer schedules: `make soak SEEDS=5 NEMESIS=all` (docs/reliability.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.local import Sandbox
from schemas.config import PipelineConfig
from tests.support.convergence.nemesis import CI_KINDS, schedule
from tests.support.convergence.run import run_seed
from tests.support.convergence.shapes import parse_shapes

pytestmark = pytest.mark.integration


def test_a_short_fault_schedule_loses_nothing(sandbox: Sandbox, sandbox_config: PipelineConfig,
                                              tmp_path: Path) -> None:
    seed = 11
    faults = schedule(seed, CI_KINDS, list(sandbox_config.regions), count=4, span_s=8.0, stop_s=(3.0, 6.0),
                      must=CI_KINDS)
    result = run_seed(sandbox_config, seed, topology="mesh", shapes=parse_shapes(""), tmp=tmp_path,
                      txns_per_client=60, faults=faults, sandbox=sandbox)
    summary = json.dumps(result.summary())
    print(summary)
    schedule_text = "\n".join(f.describe() for f in faults)
    assert result.ok, f"{result.report}\nfaults injected: {json.dumps(result.faults)}\nschedule:\n{schedule_text}"
    assert set(CI_KINDS) <= set(result.fault_counts()), \
        f"a fault of the schedule was not injected: {result.faults}"
    assert result.history.acks, "the workload acknowledged nothing: it proves nothing"
