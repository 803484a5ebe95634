"""`cdcsync demo` (`make demo`): a 3-region sandbox, the supervised pipeline, a concurrent workload
with deliberate conflicts, live progress, quiescence, `verify` and a summary.

- `run.py`        the phases in order, and the teardown that stops whatever was started;
- `tables.py`     the demo's tables, their conflict strategies and the demo's pipeline config;
- `resolvers.py`  the `custom` resolver of `shop.inventory`;
- `workload.py`   writer threads in every region on a small shared key space;
- `progress.py`   what the live view reads (producer metrics, status.py lags, conflict-log counts)
                  and how it is drawn;
- `quiescence.py` when the pipeline has settled (every lag zero, every database still);
- `summary.py`    the closing report: rows, events, conflicts, a few conflict-log entries, commands.

The command (`cdcsync/commands/demo.py`) only parses options and calls `run.main`.
"""

__all__ = ["progress", "quiescence", "resolvers", "run", "summary", "tables", "workload"]
