"""`cdcsync demo` (`make demo`): a 3-region sandbox, the supervised pipeline, a concurrent workload
with deliberate conflicts, live progress, quiescence, `verify` and a summary.

- `tables.py`     the demo's tables, their conflict strategies and the demo's pipeline config;
- `workload.py`   writer threads in every region on a small shared key space;
- `progress.py`   what the live view reads (producer metrics, status.py lags, conflict-log counts)
                  and how it is drawn;
- `quiescence.py` when the pipeline has settled (every lag zero, every database still);
- `summary.py`    the closing report: rows, events, conflicts, a few conflict-log entries, commands.

The command itself (orchestration and teardown) is `cdcsync/commands/demo.py`.
"""
