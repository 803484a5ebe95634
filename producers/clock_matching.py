"""Pairing the `<meta_db>.row_clocks` rows of a transaction with its row changes, exactly.

Every local write to a table with clock triggers upserts the row's clock in the writer's own
transaction, right after the row (AFTER triggers; MariaDB logs the row event, then the trigger's
clock row event, row by row). The UPDATE trigger ticks only when the row's stored bytes change,
which is exactly when the server logs a row event (common/clock_triggers.py). So in a local
transaction, per (db, table, canonical key) and in binlog order, changes and clock rows alternate:
each change is followed by its own clock row, whose `deleted` flag says the same as the change (a
delete is followed by a tombstone). A key change (an Update_rows row whose key differs) is
published as a delete of the old key and an insert of the new key; the trigger writes the old key's
tombstone and the new key's clock, so each of the two pairs on its own key.

`pair` enforces that, and `unpaired_allowed` is the one rule for what may stand alone. In a local
transaction nothing may: a clock row without its change (a trigger that ticks where the server
logs nothing: stale triggers from before this rule, or a write to row_clocks by hand) or a change
without its clock (a trigger that does not compare a column added since `cdcsync init`) raises
`ClockPairingError`, and the producer stops: a change is never published with a wrong or missing
clock. Tables that have no clock row in the transaction are not clocked there (no triggers) and
publish without `vclock`.

The database sink's own transactions (origin from `apply_marker`) legitimately hold:
- clock rows without a change: a resolution that keeps the local values, or an applied version
  whose values the row already holds, writes only the clock (the data write changes no byte, so no
  row event). The clock row pairs with nothing and is not published. Safe in a mesh because every
  region consumes the same versions and resolves them deterministically to the same result and
  clock; safe in a star because the hub forwards every version it consumes, unchanged, to the
  spokes (consumers/db/forwarder.py), and the spokes ignore the hub's clocked applied state and
  resolve those versions themselves. Only this region's cache keeps the older clock for the same
  value, until the next write of the key (docs/clocks.md, "The cache");
- changes without a clock row: versions that carried no clock (snapshot events, tables without
  triggers in their origin, schema drift), applied as they came; they publish without `vclock`.
A change followed by a clock row of its key pairs with it there too.

An update of a row_clocks row that keeps `hlc_us` and `deleted` and only drops counter entries or
rewrites `heads` (`cdcsync region remove`) is maintenance, not a version: it pairs with nothing.
Deleted clock rows (a tombstone purge) are not versions either; capture drops them.
"""

from __future__ import annotations

import binascii
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.row_clock_key import UnsupportedKey, key_hash, key_identity

ROW_OPS = ("insert", "update", "delete")


class ClockPairingError(RuntimeError):
    """A transaction's clock rows and row changes do not pair up. `db`, `table`, `key` name the row."""

    def __init__(self, db: str, table: str, key: str, problem: str, cause: str) -> None:
        super().__init__(f"{db}.{table} key {key!r}: {problem}; likely cause: {cause}")
        self.db, self.table, self.key, self.problem, self.cause = db, table, key, problem, cause


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _hash(value: Any) -> bytes:
    # BINARY(32): the binlog drops trailing 0x00 bytes, the stored value always has 32.
    return (value if isinstance(value, (bytes, bytearray)) else str(value).encode("latin-1")).ljust(32, b"\0")


@dataclass(frozen=True, slots=True)
class ClockRow:
    """One clock row of the transaction: the version's clock, heads and tombstone flag."""

    db: str
    table: str
    key: str            # the readable key text the trigger wrote (`pk`)
    pk_hash: bytes      # the key's identity
    clock: dict[str, Any]
    heads: Any
    deleted: bool
    after: int          # how many of the transaction's messages came before it in the binlog


@dataclass(frozen=True, slots=True)
class Change:
    """One published row change (an index into the transaction's messages)."""

    index: int
    op: str             # insert, update or delete


def unpaired_allowed(item: Change | ClockRow, *, applied: bool) -> bool:
    """Whether a row change or clock row that pairs with nothing may pass (the change then
    publishes without a clock; the clock row is not published).

    Only in the database sink's own transactions (`applied`): clock-only rows (a kept local value,
    or a version the row already held) and clockless applies. See the module docstring for why
    that is safe in a mesh and in a star. Never in a local transaction."""
    return applied


def pair(items: list[Change | ClockRow], *, applied: bool) -> list[tuple[Change, ClockRow]]:
    """Pair one key's changes and clock rows, given in binlog order: a change pairs with the clock
    row that comes right after it (for this key) and says the same about deletion. Raises
    `ClockPairingError` (with the key's text empty: the caller fills it in) for anything left
    unpaired that `unpaired_allowed` refuses, and for a mismatched tombstone flag."""
    pairs: list[tuple[Change, ClockRow]] = []
    pending: Change | None = None
    for item in items:
        if isinstance(item, Change):
            if pending is not None:
                _unpaired(pending, applied)
            pending = item
            continue
        if pending is None:
            _unpaired(item, applied)
            continue
        if item.deleted != (pending.op == "delete"):
            raise ClockPairingError("", "", "", f"its {pending.op} is followed by a clock row with deleted = "
                                    f"{int(item.deleted)}", "a write to row_clocks by hand")
        pairs.append((pending, item))
        pending = None
    if pending is not None:
        _unpaired(pending, applied)
    return pairs


def _unpaired(item: Change | ClockRow, applied: bool) -> None:
    if unpaired_allowed(item, applied=applied):
        return
    if isinstance(item, ClockRow):
        raise ClockPairingError("", "", "", "a clock row with no row change (the clock ticked, nothing would be "
                                "published)", "stale clock triggers that tick on a write that changes nothing "
                                "(run `cdcsync init`), or a write to row_clocks by hand")
    raise ClockPairingError("", "", "", f"a row change ({item.op}) with no clock row", "stale clock triggers that "
                            "do not compare a column added since `cdcsync init` (run `cdcsync init`), or a write "
                            "to row_clocks by hand")


def _rewrite(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """An update of a clock row that is maintenance, not a version (`cdcsync region remove`): the
    same hlc_us and tombstone flag, counters only dropped, never raised or added."""
    if int(before["hlc_us"]) != int(after["hlc_us"]) or int(before["deleted"]) != int(after["deleted"]):
        return False
    old, new = orjson.loads(_text(before["counters"])), orjson.loads(_text(after["counters"]))
    return all(region in old and int(old[region]) == int(count) for region, count in new.items())


class ClockRows:
    """The clock rows of one transaction, in binlog order, with where they fell among its messages."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: list[ClockRow] = []

    def __bool__(self) -> bool:
        return bool(self._rows)

    def take(self) -> list[ClockRow]:
        """The rows added so far, forgotten here (the streaming path pairs them at once)."""
        rows, self._rows = self._rows, []
        return rows

    def add(self, rows: Iterable[dict[str, Any]], after: int) -> None:
        """Rows of a row_clocks Rows event, as the library decodes them (`values` or `after_values`),
        written after the transaction's first `after` messages."""
        for row in rows:
            image = row.get("after_values") or row.get("values") or {}
            before = row.get("before_values")
            if before is not None and _rewrite(before, image):
                continue
            self._append(image, _hash(image["pk_hash"]), after)

    def add_images(self, images: Iterable[Any], after: int) -> None:
        """The same from wire-value images (producers/binlog/fast_rows.RowImages: a row dict per
        write, a (before, after) pair per update), where `pk_hash` is base64 text."""
        for image in images:
            if isinstance(image, tuple):
                before, image = image
                if _rewrite(before, image):
                    continue
            self._append(image, _hash(binascii.a2b_base64(image["pk_hash"])), after)

    def _append(self, image: dict[str, Any], pk_hash: bytes, after: int) -> None:
        counters = orjson.loads(_text(image["counters"]))
        clock = {"counters": {r: int(c) for r, c in sorted(counters.items()) if int(c) > 0},
                 "hlc_us": int(image["hlc_us"])}
        heads = image.get("heads")
        self._rows.append(ClockRow(_text(image["db"]), _text(image["tbl"]), _text(image["pk"]), pk_hash, clock,
                                   orjson.loads(_text(heads)) if heads else None, bool(int(image["deleted"])),
                                   after))

    def attach(self, messages: list[dict[str, Any]], *, applied: bool,
               published: Callable[[str, str], bool]) -> None:
        """Set `vclock` and `heads` on the change messages from their paired clock rows. Tables with
        no clock row here (and clock rows of tables this producer does not publish) are left out.
        Raises `ClockPairingError` naming the first key that does not pair up."""
        rows = [r for r in self._rows if published(r.db, r.table)]
        tables = {(r.db, r.table) for r in rows}
        by_key: dict[tuple[str, str, bytes], list[Change | ClockRow]] = defaultdict(list)
        texts: dict[bytes, str] = {}
        clocks = iter(rows)
        clock = next(clocks, None)
        for index, message in enumerate(messages):
            while clock is not None and clock.after <= index:
                by_key[(clock.db, clock.table, clock.pk_hash)].append(clock)
                clock = next(clocks, None)
            if message.get("kind") != "change" or message.get("op") not in ROW_OPS:
                continue
            if (message["db"], message["table"]) not in tables:
                continue
            try:
                # By the hash of the key's identity (text folded by collation): the trigger's `pk`
                # shows one spelling, the change may carry another.
                identity = key_identity(message["pk"], message["types"], message.get("pk_fold"))
                key = key_hash(identity)
                texts[key] = identity
            except UnsupportedKey:
                continue   # no triggers on such a table (init skips it)
            by_key[(message["db"], message["table"], key)].append(Change(index, message["op"]))
        while clock is not None:
            by_key[(clock.db, clock.table, clock.pk_hash)].append(clock)
            clock = next(clocks, None)
        pairs: list[tuple[Change, ClockRow]] = []
        for (db, table, key), items in by_key.items():
            try:
                pairs += pair(items, applied=applied)
            except ClockPairingError as err:
                shown = texts.get(key) or next((i.key for i in items if isinstance(i, ClockRow)), key.hex())
                raise ClockPairingError(db, table, shown, err.problem, err.cause) from None
        for change, row in pairs:   # only once every key paired: a refused transaction gets no clock at all
            message = messages[change.index]
            message["vclock"], message["heads"] = row.clock, row.heads


class StreamingPairs:
    """A local transaction's messages, paired with their clock rows as the binlog brings them and
    released in order as soon as they are decided, so a transaction of any size is published with
    bounded memory (issue 11: an 850k-row transaction held ~6 GB when it was buffered whole).

    The rule is `pair`'s for a local transaction (nothing may stand alone), decided incrementally:
    a clock trigger writes a change's clock row right after the change, so a change is released when
    its clock row arrives; a message that is not a row change is released at once. A change still
    open when `window` messages wait behind it cannot be paired any more in a local transaction:
    if its table has had a clock row in this transaction it is refused (`ClockPairingError`), if not
    the table has no clock triggers and its changes go out without a clock (as `ClockRows.attach`
    decides at the commit); a clock row of that table arriving later is refused too. So what is
    refused is what the buffered rule refuses, except that the messages decided before the refusal
    may already be on Kafka: the transaction is not sealed, the checkpoint stays before it, and the
    restart publishes it again from its start (consumers recognise the repeats), as after a crash.

    The last message is always held back, so that `seal` can mark it `txn_last`.
    Owned by the capture thread.
    """

    __slots__ = ("_window", "_published", "_held", "_open", "_unhashed", "_clocked", "_unclocked")

    def __init__(self, window: int, published: Callable[[str, str], bool]) -> None:
        self._window = window
        self._published = published
        # [topic, key, message, headers, ready]: ready once the message may be published
        self._held: deque[list[Any]] = deque()
        self._open: dict[tuple[str, str], dict[bytes, list[list[Any]]]] = {}   # table -> key -> open changes
        # Open changes of a table with no clock row yet: keyed only once one comes (as `attach`
        # keys only the tables that have clock rows: a clockless table may have keys it cannot hash)
        self._unhashed: dict[tuple[str, str], list[list[Any]]] = {}
        self._clocked: set[tuple[str, str]] = set()          # tables with a clock row in this transaction
        self._unclocked: dict[tuple[str, str], int] = {}     # tables decided clockless -> changes sent so

    def __len__(self) -> int:
        return len(self._held)

    def add(self, entry: tuple[str, bytes, dict[str, Any], list[tuple[str, bytes]]]) -> None:
        """One message (topic, key, message, headers), in binlog order. A row change waits for its
        clock row."""
        item = [*entry, True]
        message = entry[2]
        self._held.append(item)
        if message.get("kind") != "change" or message.get("op") not in ROW_OPS:
            return
        table = (message["db"], message["table"])
        if table in self._unclocked:
            self._unclocked[table] += 1
            return
        item[4] = False
        if table in self._clocked:
            self._open_change(table, item)
        else:
            self._unhashed.setdefault(table, []).append(item)

    def _open_change(self, table: tuple[str, str], item: list[Any]) -> None:
        message = item[2]
        try:
            identity = key_identity(message["pk"], message["types"], message.get("pk_fold"))
        except UnsupportedKey:
            item[4] = True
            return   # no triggers on such a table (init skips it)
        opened = self._open.setdefault(table, {}).setdefault(key_hash(identity), [])
        if opened:
            self._refuse(table, identity, Change(0, opened[0][2]["op"]))
        opened.append(item)

    def clock_rows(self, rows: ClockRows) -> None:
        """Pair the clock rows just decoded (then forgotten: `rows` is emptied)."""
        for row in rows.take():
            table = (row.db, row.table)
            if not self._published(*table):
                continue
            if table in self._unclocked:
                raise ClockPairingError(row.db, row.table, row.key, f"a clock row after {self._unclocked[table]} "
                                        f"changes of the table published without one in this transaction",
                                        "a write to row_clocks by hand")
            if table not in self._clocked:
                self._clocked.add(table)
                for item in self._unhashed.pop(table, ()):
                    self._open_change(table, item)
            opened = self._open.get(table, {}).get(row.pk_hash)
            if not opened:
                self._refuse(table, row.key, row)
            if len(opened) > 1:
                self._refuse(table, row.key, Change(0, opened[0][2]["op"]))
            item = opened.pop()
            del self._open[table][row.pk_hash]
            try:
                pair([Change(0, item[2]["op"]), row], applied=False)   # the tombstone flag must agree
            except ClockPairingError as err:
                raise ClockPairingError(row.db, row.table, row.key, err.problem, err.cause) from None
            item[2]["vclock"], item[2]["heads"], item[4] = row.clock, row.heads, True

    def release(self) -> list[list[Any]]:
        """The messages decided, in order, except the last one held; decides the oldest open change
        once `window` messages wait."""
        held, out = self._held, []
        while len(held) > 1:
            if not held[0][4]:
                if len(held) <= self._window:
                    break
                self._decide(held[0])
            out.append(held.popleft())
        return out

    def seal(self) -> list[list[Any]]:
        """Every message left, the last marked `txn_last`: open changes are decided as at the window."""
        while self._held and not all(item[4] for item in self._held):
            self._decide(next(item for item in self._held if not item[4]))
        out = list(self._held)
        self._held.clear()
        if out:
            out[-1][2]["txn_last"] = True
        return out

    def _decide(self, item: list[Any]) -> None:
        message = item[2]
        table = (message["db"], message["table"])
        if table in self._clocked:
            identity = key_identity(message["pk"], message["types"], message.get("pk_fold"))
            self._refuse(table, identity, Change(0, message["op"]))
        changes = self._unhashed.pop(table, [])
        for change in changes:
            change[4] = True
        self._unclocked[table] = len(changes)

    @staticmethod
    def _refuse(table: tuple[str, str], key: str, item: Change | ClockRow) -> None:
        try:
            _unpaired(item, False)
        except ClockPairingError as err:
            raise ClockPairingError(table[0], table[1], key, err.problem, err.cause) from None
