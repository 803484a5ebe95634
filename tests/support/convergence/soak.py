"""`make soak SEEDS=N [TOPOLOGY=mesh|star|both] [SHAPES=a,b|-a,b] [FIRST_SEED=1]`: many seeds through
the same code as the CI test, on one sandbox started for the run.

    python -m tests.support.convergence.soak --seeds 50 --topology both --shapes odku,noop

One line per seed on stderr as it finishes, a failing seed's report on stderr and in
`<dir>/seed-<n>.txt`, the faults a seed injected in `<dir>/seed-<n>-faults.json`, and ONE JSON line
on stdout at the end:

    {"seeds_run": 50, "divergent_keys": 0, "failed_seeds": [], "shapes": [...], ...}

Every region runs a Bloom maintainer and the verdict checks its filters (`--no-bloom`: none).
`--durable` (implied by the `kill-mariadb` fault) starts the MariaDBs with `sync_binlog=1` and
`innodb_flush_log_at_trx_commit=1`.

With `--nemesis KINDS` (`make soak NEMESIS=all`) every seed runs under a seeded fault schedule
(nemesis.py), the JSON line gets per-fault counts, and a markdown table, one row per fault kind (the
table of docs/reliability.md), goes to stderr at the end.

Exit status: 0 when every seed passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from deploy.local import Sandbox
from schemas.config import load_config
from tests.conftest import REGIONS
from tests.support.convergence.nemesis import parse_kinds, schedule
from tests.support.convergence.region_cut import CUTS, BrokerFront
from tests.support.convergence.reliability import fault_table
from tests.support.convergence.run import TOPOLOGIES, run_seed
from tests.support.convergence.shapes import parse_shapes
from tests.support.convergence.workload import PAUSE_MS
from tests.support.producer import reap_all


def topology_of(choice: str, index: int) -> str:
    """`both` alternates mesh and star, seed by seed."""
    return TOPOLOGIES[index % 2] if choice == "both" else choice


def _sum_faults(results: list) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in results:
        for kind, count in r.fault_counts().items():
            total[kind] = total.get(kind, 0) + count
    return total


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds to run")
    parser.add_argument("--first-seed", type=int, default=1, help="the first seed; the others follow it")
    parser.add_argument("--topology", choices=(*TOPOLOGIES, "both"), default="both")
    parser.add_argument("--shapes", default="", help="comma-separated shape names; a leading '-' excludes "
                                                     "them; empty: every shape")
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients per region")
    parser.add_argument("--txns", type=int, default=40, help="transactions per client")
    parser.add_argument("--pause-ms", type=int, default=PAUSE_MS, help="longest pause between two transactions "
                                                                       "of a client")
    parser.add_argument("--dir", type=Path, default=None, help="where the sandbox and logs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep each seed's database (to inspect a failure)")
    parser.add_argument("--nemesis", default=None, help="fault kinds to inject (nemesis.py): comma-separated, "
                                                        "'all', or '-a,b' for all but these; default: none")
    parser.add_argument("--faults", type=int, default=6, help="faults per seed, with --nemesis")
    parser.add_argument("--supervised", action="store_true", help="run the components under one `cdcsync run` "
                                                                   "(implied by the kill-supervisor fault)")
    parser.add_argument("--stop-s", default="5,60", help="broker SIGSTOP length range in seconds, with --nemesis")
    parser.add_argument("--cut-s", default="60,180", help="region cut length range in seconds, with --nemesis "
                                                          "cut-region or cut-region-mid-txn")
    parser.add_argument("--durable", action="store_true", help="start the sandbox's MariaDBs with sync_binlog=1 and "
                                                                "innodb_flush_log_at_trx_commit=1 (implied by the "
                                                                "kill-mariadb fault)")
    parser.add_argument("--no-bloom", dest="bloom", action="store_false",
                        help="run no Bloom maintainer (by default each region runs one and the verdict checks its "
                             "filters: no false negative)")
    args = parser.parse_args(argv)
    try:
        shapes = parse_shapes(args.shapes)
        kinds = parse_kinds(args.nemesis) if args.nemesis is not None else ()
        low, high = (float(x) for x in args.stop_s.split(","))
        cut_low, cut_high = (float(x) for x in args.cut_s.split(","))
    except ValueError as err:
        parser.error(str(err))
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the sandbox and components are stopped.
    signal.signal(signal.SIGTERM, _terminated)
    root = args.dir or Path(tempfile.mkdtemp(prefix="cdcsync-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(root / "sandbox", durable=args.durable or "kill-mariadb" in kinds)
    if "kill-bloom" in kinds and not args.bloom:
        parser.error("the kill-bloom fault needs the Bloom maintainers: drop --no-bloom")
    # A region cut needs every client of the broker to go through a proxy: the broker advertises it.
    front = BrokerFront().start() if set(kinds) & set(CUTS) else None
    started = time.monotonic()
    results = []
    try:
        sandbox.up(REGIONS, broker_advertised_port=front.port if front else None)
        if front is not None:
            front.forward_to(next(s.port for s in sandbox.status() if s.name == "broker"))
        base = load_config(sandbox.config_path)
        for index in range(args.seeds):
            seed = args.first_seed + index
            topology = topology_of(args.topology, index)
            # The faults spread over about the workload's length (txns x mean pause).
            faults = schedule(seed, kinds, REGIONS, count=args.faults, span_s=args.txns * args.pause_ms / 2000,
                              stop_s=(low, high), cut_s=(cut_low, cut_high)) if kinds else None
            try:
                result = run_seed(base, seed, topology=topology, shapes=shapes, tmp=root / f"seed-{seed}",
                                  clients_per_region=args.clients, txns_per_client=args.txns,
                                  pause_ms=args.pause_ms, keep=args.keep, faults=faults, sandbox=sandbox,
                                  supervised=args.supervised or "kill-supervisor" in kinds, front=front,
                                  bloom=args.bloom)
            finally:
                reap_all()
            results.append(result)
            print(json.dumps(result.summary()), file=sys.stderr, flush=True)
            if result.faults:     # what was injected, when (seconds after the workload started), in order
                (root / f"seed-{seed}-faults.json").write_text(json.dumps(result.faults, indent=1) + "\n")
            if not result.ok:
                (root / f"seed-{seed}.txt").write_text(result.report + "\n")
                print(result.report, file=sys.stderr, flush=True)
    finally:
        sandbox.down()
        if front is not None:
            front.close()
    failed = [r for r in results if not r.ok]
    problems: dict[str, int] = {}
    for r in failed:
        for kind, count in r.kinds().items():
            problems[kind] = problems.get(kind, 0) + count
    print(json.dumps({
        "seeds_run": len(results),
        "divergent_keys": sum(len(r.divergent_keys) for r in results),
        "failed_seeds": [r.seed for r in failed],
        "shapes": list(shapes),
        "topology": args.topology,
        "durable": sandbox.durable,
        "bloom": args.bloom,
        "acked_writes": sum(len(r.history.acks) for r in results),
        "conflicts": sum(r.conflicts for r in results),
        "problems": problems,
        **({"nemesis": list(kinds), "faults": _sum_faults(results),
            "unknown_outcome": sum(r.history.unknown for r in results)} if kinds else {}),
        "seconds": round(time.monotonic() - started, 1),
        "dir": str(root),
    }), flush=True)
    if kinds:
        command = " ".join(["python -m tests.support.convergence.soak", *(argv if argv is not None else sys.argv[1:])])
        print(fault_table(results, command), file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
