"""Deterministic conflict resolution: given the local version of a row and a remote one, which to keep.

`decide(local, remote, strategy)` is pure: no clock reads, no randomness, no Python `hash()`. It is
what the database and cache sinks call for each incoming row change (docs/conflicts.md):

- SKIP      the remote version is before or equal to the local one (so a replay changes nothing);
- APPLY     the remote version is after the local one (or there is no local row): take it as it is;
- RESOLVED  the two are concurrent: the strategy makes one version whose clock is the merge of
            both, and names the versions that lost (the conflict record).

Every offered strategy (`lww`, `region-priority`, `custom`) gives every region that has seen the same
set of versions the same result, whatever the delivery order; the property tests in
tests/unit/test_resolution.py check that. `column-lww` decides the clock here like `lww`; its values are
merged per column by consumers/db/column_merge.py (docs/conflicts.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Callable, Protocol


from schemas.config import ConfigError, TableConfig
from schemas.row_version import RowVersion, Values
from schemas.vclock import Order


class Action(StrEnum):
    SKIP = "skip"
    APPLY = "apply"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a remote version. `result` is the row's version afterwards (local on SKIP)."""

    action: Action
    result: RowVersion
    local: RowVersion | None
    remote: RowVersion
    strategy: str
    losers: tuple[RowVersion, ...] = ()    # RESOLVED only: the inputs whose write did not survive whole

    def record(self) -> dict[str, Any]:
        """The conflict record (JSON-ready) a sink logs for a RESOLVED decision."""
        return {
            "strategy": self.strategy,
            "local": _version_record(self.local),
            "remote": _version_record(self.remote),
            "result": _version_record(self.result),
            "losers": [_version_record(v) for v in self.losers],
        }


def _version_record(version: RowVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {"values": None if version.values is None else dict(version.values), "origin": version.origin,
            "counters": dict(version.clock.counters), "hlc_us": version.clock.hlc_us, "hash": version.hash}


class Strategy(Protocol):
    """Resolves two concurrent versions. Must be deterministic, commutative and associative."""

    name: str

    def resolve(self, local: RowVersion, remote: RowVersion) -> tuple[RowVersion, tuple[RowVersion, ...]]:
        """The resolved version (clock = merge of both) and the losers."""
        ...


def lww_key(version: RowVersion) -> tuple[int, int, str, str]:
    """The total order of last-writer-wins: timestamp, then a delete beats a write, then the origin
    region's name, then the value hash. The greatest key wins."""
    return (version.clock.hlc_us, 1 if version.deleted else 0, version.origin, version.hash)


def _winner_takes_all(local: RowVersion, remote: RowVersion, key: Callable[[RowVersion], Any]
                      ) -> tuple[RowVersion, tuple[RowVersion, ...]]:
    winner, loser = (remote, local) if key(remote) > key(local) else (local, remote)
    resolved = RowVersion(winner.values, local.clock.merge(remote.clock), winner.origin)
    return resolved, (loser,)


class Lww:
    """Last writer wins, by `lww_key`. The merged clock's timestamp is the winner's (it is the largest),
    so a resolved version keeps its winner's key: resolving is `max` on a total order."""

    name = "lww"

    def resolve(self, local: RowVersion, remote: RowVersion) -> tuple[RowVersion, tuple[RowVersion, ...]]:
        return _winner_takes_all(local, remote, lww_key)


def _concurrent_heads(local: RowVersion, remote: RowVersion, key: Callable[[RowVersion], Any]
                      ) -> tuple[RowVersion, ...]:
    """The maximal versions (by clock) among both sides' heads, greatest `key` first: what the two
    versions stand for together. A head that a later write dominates drops out here."""
    candidates = {}
    for head in (*local.heads(), *remote.heads()):
        head = replace(head, siblings=())
        if head.clock not in candidates or key(head) > key(candidates[head.clock]):
            candidates[head.clock] = head
    heads = [h for h in candidates.values()
             if not any(h.clock.compare(o.clock) is Order.BEFORE for o in candidates.values())]
    return tuple(sorted(heads, key=key, reverse=True))


class RegionPriority:
    """The version from the region listed first wins; between versions of one region, last writer wins.

    Priority does not follow causality (a low-priority write on top of a high-priority version has a
    smaller key), so a resolved version keeps its concurrent heads (`siblings`) and resolving picks
    the greatest key among the maximal heads of both sides: a function of the set of concurrent
    versions, the same in every region whatever the order.
    """

    name = "region-priority"

    def __init__(self, priority: tuple[str, ...]) -> None:
        self._rank = {region: len(priority) - i for i, region in enumerate(priority)}  # unlisted: 0, lowest

    def key(self, version: RowVersion) -> tuple[int, tuple[int, int, str, str]]:
        return (self._rank.get(version.origin, 0), lww_key(version))

    def resolve(self, local: RowVersion, remote: RowVersion) -> tuple[RowVersion, tuple[RowVersion, ...]]:
        heads = _concurrent_heads(local, remote, self.key)
        winner = heads[0]
        resolved = RowVersion(winner.values, local.clock.merge(remote.clock), winner.origin, siblings=heads)
        already_lost = local.siblings[1:]
        return resolved, tuple(h for h in heads[1:] if h not in already_lost)


Resolver = Callable[[RowVersion, RowVersion], Values | None]


class ResolverError(TypeError):
    """A custom resolver returned something that is not a whole row of its table (or None)."""


def _compatible(value: Any, seen: set[type]) -> bool:
    """Whether a returned value has a wire type the column's versions hold (an int for a float
    column is fine; a bool is not an int here, the wire has none)."""
    if value is None or not seen:
        return True
    kind = type(value)
    return kind in seen or (kind is int and float in seen)


def check_resolved(values: Any, inputs: tuple[RowVersion, ...], spec: str, table: str) -> Values | None:
    """`values` if it is None (a delete) or a whole row: every column the input versions have, no
    other, each None or of a wire type that column holds in the inputs. Otherwise a
    `ResolverError` that names the resolver, the table and what is wrong: a partial row would be
    written as it is in one region and leave the other columns different per region."""
    if values is None:
        return None
    where = f"custom resolver {spec}" + (f" (table {table})" if table else "")
    if not isinstance(values, dict):
        raise ResolverError(f"{where} returned {type(values).__name__}, not a dict or None")
    columns: dict[str, set[type]] = {}
    for version in inputs:
        for column, value in (version.values or {}).items():
            seen = columns.setdefault(column, set())
            if value is not None:
                seen.add(type(value))
    if not columns:
        raise ResolverError(f"{where} returned a row although every version it was given is a delete; return None")
    problems = []
    missing = [c for c in columns if c not in values]
    unknown = [c for c in values if c not in columns]
    if missing:
        problems.append(f"missing column(s) {missing}")
    if unknown:
        problems.append(f"unknown column(s) {unknown}")
    for column, seen in columns.items():
        if column in values and not _compatible(values[column], seen):
            held = "/".join(sorted(t.__name__ for t in seen))
            problems.append(f"column {column!r} is {type(values[column]).__name__}, the versions hold {held}")
    if problems:
        raise ResolverError(f"{where} must return every column of the row, typed as its inputs' values (or None "
                            f"to delete): " + "; ".join(problems))
    return values


class Custom:
    """A user function `(a, b) -> values` (None deletes the row), run over the concurrent heads of both
    sides in a fixed order: greatest `lww_key` first, `a` being the result so far. The result's clock is
    the merge, its origin the one of the greatest `(hlc_us, origin)`. The function must be
    deterministic (no clock, randomness, I/O); it should be symmetric, so the order convention does
    not show. Because the heads are kept (`siblings`), it need not be associative to converge.
    """

    name = "custom"

    def __init__(self, function: Resolver, spec: str, table: str = "") -> None:
        self.function, self.spec, self.table = function, spec, table

    def resolve(self, local: RowVersion, remote: RowVersion) -> tuple[RowVersion, tuple[RowVersion, ...]]:
        heads = _concurrent_heads(local, remote, lww_key)
        acc = heads[0]
        for head in heads[1:]:
            values = check_resolved(self.function(acc, head), (acc, head), self.spec, self.table)
            latest = max((acc, head), key=lambda v: (v.clock.hlc_us, v.origin))
            acc = RowVersion(values, acc.clock.merge(head.clock), latest.origin)
        resolved = RowVersion(acc.values, local.clock.merge(remote.clock), acc.origin, siblings=heads)
        already_lost = [h for h in local.siblings if h.values != local.values]
        return resolved, tuple(h for h in heads if h.values != acc.values and h not in already_lost)


class ColumnLww(Lww):
    """`column-lww`: the clock decision and a whole-row fallback as `lww`; the database sink merges the
    values per column from the versions' per-column stamps (consumers/db/column_merge.py)."""

    name = "column-lww"


LWW = Lww()


def load_resolver(spec: str, key: str) -> Resolver:
    """Import `module:function`; a ConfigError names `key` (the config key) when that is impossible."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{key}: {spec!r} must be `module:function`")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or whatever the module raises on import
        raise ConfigError(f"{key}: cannot import module {module_name!r}: {err}") from None
    function = getattr(module, attr, None)
    if function is None:
        raise ConfigError(f"{key}: module {module_name!r} has no attribute {attr!r}")
    if not callable(function):
        raise ConfigError(f"{key}: {spec!r} is not callable")
    return function


def strategy_for(table: TableConfig, name: str = "<db>.<table>") -> Strategy:
    """The strategy a table's config asks for; `name` is its `db.table` key, for error messages."""
    if table.conflict_strategy == "lww":
        return LWW
    if table.conflict_strategy == "column-lww":
        return ColumnLww()
    if table.conflict_strategy == "region-priority":
        return RegionPriority(table.region_priority)
    key = f'tables."{name}".custom_resolver'
    if not table.custom_resolver:
        raise ConfigError(f"{key}: required when conflict_strategy is 'custom'")
    return Custom(load_resolver(table.custom_resolver, key), table.custom_resolver, name)


def decide(local: RowVersion | None, remote: RowVersion, strategy: Strategy = LWW) -> Decision:
    """SKIP, APPLY or RESOLVED (see the module docstring). Pure and deterministic."""
    if local is None:
        return Decision(Action.APPLY, remote, None, remote, strategy.name)
    order = remote.clock.compare(local.clock)
    if order in (Order.BEFORE, Order.EQUAL):
        return Decision(Action.SKIP, local, local, remote, strategy.name)
    if order is Order.AFTER:
        return Decision(Action.APPLY, remote, local, remote, strategy.name)
    resolved, losers = strategy.resolve(local, remote)
    return Decision(Action.RESOLVED, resolved, local, remote, strategy.name, losers)


__all__ = ["Action", "ColumnLww", "Custom", "Decision", "LWW", "Lww", "RegionPriority", "ResolverError", "Strategy",
           "check_resolved", "decide", "load_resolver", "lww_key", "strategy_for"]
