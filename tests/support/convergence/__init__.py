"""The randomized, seeded, model-based convergence checker (docs/convergence-checker.md).

One module per concern:

| module | job |
|---|---|
| `schema.py` | the tables a seed writes to, and how their keys compare (the model key) |
| `shapes.py` | the workload shapes, each a named generator of transactions |
| `history.py` | the acknowledged writes, each with its effect and the clock it got |
| `workload.py` | concurrent clients per region running the shapes and recording the history |
| `final_state.py` | reading what the regions hold at the end: rows (HEX), caches, clocks, losers, dead letters |
| `checker.py` | the verdict: byte-identical regions, caches equal to databases, every write accounted for |
| `report.py` | what a failing seed prints: keys, their clocks per region, their events on the topics |
| `run.py` | one seed end to end on a running sandbox (database, topics, pipeline, workload, check) |
| `soak.py` | `make soak`: many seeds on one sandbox, one JSON line at the end |
"""
