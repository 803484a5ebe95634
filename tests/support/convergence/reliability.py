"""The table of docs/reliability.md, from a nemesis soak's own results: one row per fault kind.

A seed runs several kinds of faults at once, so a row sums over the seeds in which that kind was
injected at least once (a problem of a seed counts in the row of every kind it injected; the `all`
row counts each seed once). The checker has no separate double-apply counter: events carry whole
row images with their clocks, so an event applied twice, or an older one applied after a newer one,
leaves a row or a clock that differs between regions, or an acknowledged write not final nor
superseded: `rows differ` and `write lost` are where it shows.
"""

from __future__ import annotations

from typing import Protocol


class _Result(Protocol):       # run.SeedResult, without importing the whole pipeline here
    history: object
    dead_letters: int

    def fault_counts(self) -> dict[str, int]: ...
    def kinds(self) -> dict[str, int]: ...
    @property
    def divergent_keys(self) -> list[str]: ...


HEADER = ("| fault | injected | seeds | writes acknowledged | outcome unknown | lost | rows differ "
          "(double-applied) | divergent keys | dead letters (unexplained) | command |")


def _row(name: str, results: list[_Result], injected: int, command: str) -> str:
    problems: dict[str, int] = {}
    for r in results:
        for kind, count in r.kinds().items():
            problems[kind] = problems.get(kind, 0) + count
    acked = sum(len(r.history.acks) for r in results)                  # type: ignore[attr-defined]
    unknown = sum(r.history.unknown for r in results)                  # type: ignore[attr-defined]
    divergent = sum(len(r.divergent_keys) for r in results)
    dead = sum(r.dead_letters for r in results)
    return (f"| {name} | {injected} | {len(results)} | {acked} | {unknown} | {problems.get('write lost', 0)} | "
            f"{problems.get('rows differ', 0)} | {divergent} | {dead} ({problems.get('dead letter', 0)}) | "
            f"`{command}` |")


def fault_table(results: list[_Result], command: str) -> str:
    kinds = sorted({kind for r in results for kind in r.fault_counts()})
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for kind in kinds:
        seeds = [r for r in results if kind in r.fault_counts()]
        lines.append(_row(f"`{kind}`", seeds, sum(r.fault_counts()[kind] for r in seeds), command))
    lines.append(_row("all", results, sum(sum(r.fault_counts().values()) for r in results), command))
    return "\n".join(lines)
