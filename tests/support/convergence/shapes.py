"""The workload shapes: each a named generator of the transactions a real application sends.

A shape is `f(rng, ctx) -> list[Txn]`: one or more transactions the client runs in order, each
committed (acknowledged) or rolled back on its own. A `Txn` lists its statements and what it
`touches` (table + WHERE clause): the client reads those rows before and after the statements, so
the history knows every key the transaction changed, even one a cascade deleted.

Key spaces are small on purpose (a handful of keys per table, the same in every region), so that
writes from different regions meet on the same rows and conflicts are frequent.

Select shapes by name (`--shapes odku,noop`); `ALL` is every shape, in this file's order.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.convergence.schema import COLS_KEYS, STOCK_KEYS

Params = tuple[Any, ...]
# A statement's parameters, or a function of the open cursor that returns them (an ORM that reads
# the row first) or None to skip the statement (the row was not there).
ParamSource = Params | Callable[[Any], Params | None]


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: ParamSource = ()


@dataclass(frozen=True, slots=True)
class Touch:
    """Rows a transaction may change: `SELECT * FROM table WHERE where` before and after it."""

    table: str
    where: str
    params: Params


@dataclass(frozen=True, slots=True)
class Txn:
    shape: str
    statements: tuple[Statement, ...]
    touches: tuple[Touch, ...]
    generated_key: bool = False    # an INSERT whose key the server chooses (AUTO_INCREMENT)


@dataclass
class ClientContext:
    """What a shape may know about its client: names for unique values, and the statements other
    clients of the same region sent (for retries that arrive through another connection)."""

    region: str
    client: int
    shared: "SharedPool"
    counter: int = 0

    def token(self) -> str:
        """A value no other write of the run uses: the history tells writes apart by it."""
        self.counter += 1
        return f"{self.region}{self.client}-{self.counter}"


@dataclass
class SharedPool:
    """Per region: recent transactions, which another client of the region may send again."""

    txns: list[Txn] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, txn: Txn) -> None:
        with self.lock:
            self.txns.append(txn)
            del self.txns[:-8]

    def take(self, rng: random.Random) -> Txn | None:
        with self.lock:
            return rng.choice(self.txns) if self.txns else None


Shape = Callable[[random.Random, ClientContext], list[Txn]]
SHAPES: dict[str, Shape] = {}


def shape(name: str) -> Callable[[Shape], Shape]:
    def register(fn: Shape) -> Shape:
        SHAPES[name] = fn
        return fn
    return register


KV_KEYS = 6
NAMES = ("bob", "ann", "eve")
PAIR_A = 3
PAIR_B = ("x", "y")
PARENTS = 4
CHILDREN = 3
UNIQ_KEYS = 5
EMAILS = ("a@example.com", "b@example.com", "c@example.com")
AUTO_IDS = 12          # updates and deletes aim at ids 1..AUTO_IDS, whoever inserted them


def spelling(rng: random.Random, word: str) -> str:
    """One of the spellings the default collation treats as `word`: case and trailing spaces."""
    return rng.choice((word, word.upper(), word.capitalize(), word + " ", word.upper() + "  "))


def kv_touch(*keys: int) -> tuple[Touch, ...]:
    return tuple(Touch("kv", "id = %s", (k,)) for k in keys)


def name_touch(*names: str) -> tuple[Touch, ...]:
    return tuple(Touch("names", "name = %s", (n,)) for n in names)   # the collation finds any spelling


def one(name: str, sql: str, params: ParamSource, touches: tuple[Touch, ...]) -> list[Txn]:
    return [Txn(name, (Statement(sql, params),), touches)]


@shape("plain")
def plain(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """Insert, update, delete of an INT key: today's baseline."""
    k, token = rng.randrange(KV_KEYS), ctx.token()
    sql, params = rng.choice((
        ("INSERT INTO kv (id, v, n) VALUES (%s, %s, 0)", (k, token)),
        ("UPDATE kv SET v = %s, n = n + 1 WHERE id = %s", (token, k)),
        ("DELETE FROM kv WHERE id = %s", (k,)),
    ))
    return one("plain", sql, params, kv_touch(k))


@shape("retry")
def retry(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """An idempotent retry: the same INSERT ... ON DUPLICATE KEY UPDATE sent twice (a client that
    timed out), or sent again by another client of the region."""
    earlier = ctx.shared.take(rng) if rng.random() < 0.4 else None
    if earlier is not None:
        return [earlier]
    k = rng.randrange(KV_KEYS)
    txn = Txn("retry", (Statement("INSERT INTO kv (id, v, n) VALUES (%s, %s, 1) "
                                  "ON DUPLICATE KEY UPDATE v = VALUES(v), n = VALUES(n)", (k, ctx.token())),),
              kv_touch(k))
    ctx.shared.push(txn)
    return [txn, txn]


def _orm_params(table: str, where: str, key: Params, columns: tuple[str, ...]) -> Callable[[Any], Params | None]:
    """An ORM's save of an unchanged object: read every field, write every field back as literals."""
    def read(cur: Any) -> Params | None:
        cur.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where} FOR UPDATE", key)
        row = cur.fetchone()
        if row is None:
            return None
        return (*(row[c] for c in columns), *key) if isinstance(row, dict) else (*row, *key)
    return read


@shape("noop")
def noop(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """Writes that change nothing: `SET v = v`, an ORM saving every field unchanged, and a no-op
    followed by a real update of the same row in one transaction."""
    k = rng.randrange(KV_KEYS)
    choice = rng.randrange(4)
    if choice == 0:
        return one("noop", "UPDATE kv SET v = v WHERE id = %s", (k,), kv_touch(k))
    if choice == 1:
        return one("noop", "UPDATE kv SET v = %s, n = %s WHERE id = %s",
                   _orm_params("kv", "id = %s", (k,), ("v", "n")), kv_touch(k))
    if choice == 2:
        return [Txn("noop", (Statement("UPDATE kv SET v = v WHERE id = %s", (k,)),
                             Statement("UPDATE kv SET v = %s, n = n + 1 WHERE id = %s", (ctx.token(), k))),
                    kv_touch(k))]
    name = spelling(rng, rng.choice(NAMES))
    return one("noop", "UPDATE names SET v = v WHERE name = %s", (name,), name_touch(name))


@shape("odku")
def odku(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """INSERT ... ON DUPLICATE KEY UPDATE: a real update, and `id = id` (insert or nothing)."""
    k, token = rng.randrange(KV_KEYS), ctx.token()
    update = rng.choice(("v = VALUES(v), n = n + 1", "id = id"))
    return one("odku", f"INSERT INTO kv (id, v, n) VALUES (%s, %s, 0) ON DUPLICATE KEY UPDATE {update}",
               (k, token), kv_touch(k))


@shape("replace")
def replace(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    k = rng.randrange(KV_KEYS)
    return one("replace", "REPLACE INTO kv (id, v, n) VALUES (%s, %s, 0)", (k, ctx.token()), kv_touch(k))


@shape("multirow")
def multirow(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """Multi-row UPDATE and DELETE. The UPDATE writes one of two values, so some of the rows it
    matches often hold it already."""
    keys = sorted(rng.sample(range(KV_KEYS), rng.randint(2, 4)))
    marks = ", ".join(["%s"] * len(keys))
    if rng.random() < 0.7:
        return one("multirow", f"UPDATE kv SET v = %s WHERE id IN ({marks})",
                   (rng.choice(("same-0", "same-1")), *keys), kv_touch(*keys))
    return one("multirow", f"DELETE FROM kv WHERE id IN ({marks})", tuple(keys), kv_touch(*keys))


def _piece(rng: random.Random, ctx: ClientContext) -> tuple[Statement, tuple[Touch, ...]]:
    """One statement of a multi-table transaction."""
    token = ctx.token()
    pick = rng.randrange(5)
    if pick == 0:
        k = rng.randrange(KV_KEYS)
        return Statement("INSERT INTO kv (id, v, n) VALUES (%s, %s, 0) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                         (k, token)), kv_touch(k)
    if pick == 1:
        k = rng.randrange(KV_KEYS)
        return Statement("DELETE FROM kv WHERE id = %s", (k,)), kv_touch(k)
    if pick == 2:
        name = spelling(rng, rng.choice(NAMES))
        return Statement("INSERT INTO names (name, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                         (name, token)), name_touch(name)
    if pick == 3:
        a, b = rng.randrange(PAIR_A), rng.choice(PAIR_B)
        return Statement("INSERT INTO pairs (a, b, v) VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                         (a, b, token)), (Touch("pairs", "a = %s AND b = %s", (a, b)),)
    k = rng.randrange(UNIQ_KEYS)
    return Statement("UPDATE uniq SET v = %s WHERE id = %s", (token, k)), (Touch("uniq", "id = %s", (k,)),)


@shape("txn")
def txn(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """Transactions of several statements over several tables."""
    pieces = [_piece(rng, ctx) for _ in range(rng.randint(2, 4))]
    return [Txn("txn", tuple(s for s, _ in pieces), tuple(t for _, ts in pieces for t in ts))]


@shape("pkchange")
def pkchange(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """UPDATEs that change the primary key: an INT key, a text key (to another name, or to another
    spelling of the same one), one column of a composite key."""
    pick = rng.randrange(3)
    if pick == 0:
        old, new = rng.sample(range(KV_KEYS), 2)
        return one("pkchange", "UPDATE kv SET id = %s, v = %s WHERE id = %s", (new, ctx.token(), old),
                   kv_touch(old, new))
    if pick == 1:
        old, new = rng.choice(NAMES), rng.choice(NAMES)
        old_s, new_s = spelling(rng, old), spelling(rng, new)
        return one("pkchange", "UPDATE names SET name = %s WHERE name = %s", (new_s, old_s),
                   name_touch(old_s, new_s))
    a = rng.randrange(PAIR_A)
    old_b, new_b = rng.sample(PAIR_B, 2)
    return one("pkchange", "UPDATE pairs SET b = %s WHERE a = %s AND b = %s", (new_b, a, old_b),
               (Touch("pairs", "a = %s AND b = %s", (a, old_b)), Touch("pairs", "a = %s AND b = %s", (a, new_b))))


@shape("reinsert")
def reinsert(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """A delete and a re-insert of the same key: in one transaction, or in two."""
    k = rng.randrange(KV_KEYS)
    delete = Statement("DELETE FROM kv WHERE id = %s", (k,))
    insert = Statement("INSERT INTO kv (id, v, n) VALUES (%s, %s, 0)", (k, ctx.token()))
    if rng.random() < 0.5:
        return [Txn("reinsert", (delete, insert), kv_touch(k))]
    return [Txn("reinsert", (delete,), kv_touch(k)), Txn("reinsert", (insert,), kv_touch(k))]


@shape("collation")
def collation(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """A VARCHAR key in the default collation, written with case and trailing-space variants."""
    name, token = spelling(rng, rng.choice(NAMES)), ctx.token()
    sql, params = rng.choice((
        ("INSERT INTO names (name, v) VALUES (%s, %s)", (name, token)),
        ("INSERT INTO names (name, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)", (name, token)),
        ("REPLACE INTO names (name, v) VALUES (%s, %s)", (name, token)),
        ("UPDATE names SET v = %s WHERE name = %s", (token, name)),
        ("DELETE FROM names WHERE name = %s", (name,)),
    ))
    return one("collation", sql, params, name_touch(name))


@shape("composite")
def composite(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """A composite key (INT, VARCHAR), the text part in case variants."""
    a, b, token = rng.randrange(PAIR_A), spelling(rng, rng.choice(PAIR_B)), ctx.token()
    sql, params = rng.choice((
        ("INSERT INTO pairs (a, b, v) VALUES (%s, %s, %s)", (a, b, token)),
        ("INSERT INTO pairs (a, b, v) VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)", (a, b, token)),
        ("UPDATE pairs SET v = %s WHERE a = %s AND b = %s", (token, a, b)),
        ("DELETE FROM pairs WHERE a = %s AND b = %s", (a, b)),
    ))
    return one("composite", sql, params, (Touch("pairs", "a = %s AND b = %s", (a, b)),))


@shape("fk")
def fk(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """A parent and its children (FOREIGN KEY ... ON DELETE CASCADE): the parent with children in one
    transaction, a child alone, a child's update, and the parent's delete (cascading)."""
    p = rng.randrange(PARENTS)
    parent, children = Touch("parent", "id = %s", (p,)), Touch("child", "pid = %s", (p,))
    pick = rng.randrange(4)
    if pick == 0:
        seqs = sorted(rng.sample(range(CHILDREN), rng.randint(1, 2)))
        statements = [Statement("INSERT INTO parent (id, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                                (p, ctx.token()))]
        statements += [Statement("INSERT INTO child (pid, seq, v) VALUES (%s, %s, %s) "
                                 "ON DUPLICATE KEY UPDATE v = VALUES(v)", (p, s, ctx.token())) for s in seqs]
        return [Txn("fk", tuple(statements), (parent, children))]
    if pick == 1:
        return one("fk", "INSERT INTO child (pid, seq, v) VALUES (%s, %s, %s)",
                   (p, rng.randrange(CHILDREN), ctx.token()), (children,))
    if pick == 2:
        return one("fk", "UPDATE child SET v = %s WHERE pid = %s AND seq = %s",
                   (ctx.token(), p, rng.randrange(CHILDREN)), (children,))
    return one("fk", "DELETE FROM parent WHERE id = %s", (p,), (parent, children))


@shape("autoinc")
def autoinc(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """AUTO_INCREMENT inserts in every region, and updates and deletes of the ids they got."""
    token = ctx.token()
    if rng.random() < 0.6:
        return [Txn("autoinc", (Statement("INSERT INTO auto (v) VALUES (%s)", (token,)),),
                    (Touch("auto", "v = %s", (token,)),), generated_key=True)]
    k = rng.randint(1, AUTO_IDS)
    touch = (Touch("auto", "id = %s", (k,)),)
    if rng.random() < 0.7:
        return one("autoinc", "UPDATE auto SET v = %s WHERE id = %s", (token, k), touch)
    return one("autoinc", "DELETE FROM auto WHERE id = %s", (k,), touch)


@shape("unique")
def unique(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """A secondary UNIQUE key: different primary keys written with the same unique value."""
    k, email = rng.randrange(UNIQ_KEYS), rng.choice(EMAILS)
    touch = (Touch("uniq", "id = %s", (k,)),)
    sql, params = rng.choice((
        ("INSERT INTO uniq (id, email, v) VALUES (%s, %s, %s)", (k, email, ctx.token())),
        ("UPDATE uniq SET email = %s, v = %s WHERE id = %s", (email, ctx.token(), k)),
        ("DELETE FROM uniq WHERE id = %s", (k,)),
    ))
    return one("unique", sql, params, touch)


@shape("delta")
def delta(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """Counters: `qty = qty + d` on the warm-up's stock rows (a delta column in a mesh), alone, with
    another column, or over two rows in one transaction."""
    keys = rng.sample(range(STOCK_KEYS), rng.choice((1, 1, 2)))
    statements = []
    for k in keys:
        d = rng.choice((-3, -2, -1, -1, 1, 2, 5))
        if rng.random() < 0.5:
            statements.append(Statement("UPDATE stock SET qty = qty + %s WHERE id = %s", (d, k)))
        else:
            statements.append(Statement("UPDATE stock SET qty = qty + %s, v = %s WHERE id = %s", (d, ctx.token(), k)))
    return [Txn("delta", tuple(statements), tuple(Touch("stock", "id = %s", (k,)) for k in keys))]


@shape("columns")
def columns(rng: random.Random, ctx: ClientContext) -> list[Txn]:
    """Different columns of one row written at once in several regions (column-lww in a mesh): mostly
    one column, sometimes two, and inserts and deletes of the row."""
    k, token = rng.randrange(COLS_KEYS), ctx.token()
    touch = (Touch("cols", "id = %s", (k,)),)
    pick = rng.random()
    if pick < 0.25:
        return one("columns", "UPDATE cols SET a = %s WHERE id = %s", (token, k), touch)
    if pick < 0.5:
        return one("columns", "UPDATE cols SET b = %s WHERE id = %s", (token, k), touch)
    if pick < 0.65:
        return one("columns", "UPDATE cols SET n = n + 1 WHERE id = %s", (k,), touch)
    if pick < 0.75:
        return one("columns", "UPDATE cols SET a = %s, n = n + 10 WHERE id = %s", (token, k), touch)
    if pick < 0.9:
        return one("columns", "INSERT INTO cols (id, a, b, n) VALUES (%s, %s, %s, 0)", (k, token, token), touch)
    return one("columns", "DELETE FROM cols WHERE id = %s", (k,), touch)


ALL: tuple[str, ...] = tuple(SHAPES)


def parse_shapes(text: str | None) -> tuple[str, ...]:
    """`odku,noop` -> ("odku", "noop"); empty or None -> ALL; `-fk,unique` -> ALL without those."""
    if not text:
        return ALL
    exclude = text.startswith("-")
    names = [n.strip() for n in text.lstrip("-").split(",") if n.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        raise ValueError(f"unknown shape(s) {', '.join(unknown)}: the shapes are {', '.join(ALL)}")
    if exclude:
        return tuple(n for n in ALL if n not in names)
    return tuple(n for n in ALL if n in names)
