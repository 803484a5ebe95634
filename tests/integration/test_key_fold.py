"""The key fold (schemas/key_fold.py) against the real server: for every supported collation, two
strings of a corpus have equal folds exactly when the server's `=` says they are equal, the SQL fold
equals the Python fold, and the clock triggers hash a text key by the same identity as Python."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from cdcsync.tools.clock_init import init_region
from common.metadata_tables import ROW_CLOCKS
from schemas import key_fold
from schemas.row_clock_key import key_hash, row_clock_key, row_identity
from tests.conftest import config_for_test, connect
from tests.support.producer import write_config

pytestmark = pytest.mark.integration

# ASCII case and trailing space/tab, Latin-1, Latin Extended, Greek, Cyrillic, ß and ligatures,
# decomposed accents, full-width and circled letters, characters outside the BMP.
CORPUS = [
    "", " ", "  ", "\t", "a", "A", "a ", "a  ", "a\t", "a \t", "\ta", "a\u00a0", "bob", "BOB", "Bob ", "bób",
    "BÓB", "bo\u0301b", "böb", "strasse", "straße", "STRASSE", "straße ", "ẞ", "ss", "æ", "ae", "Æ", "œ", "oe",
    "ﬁ", "fi", "ĳ", "ij", "ǆ", "dž", "Dž", "ø", "o", "đ", "d", "ł", "l", "Ŀ", "L·", "ı", "i", "İ", "I",
    "σ", "ς", "Σ", "ά", "α", "Ω", "Ω", "K", "K", "Å", "Å", "A\u030a", "å", "й", "и", "и\u0306", "ё", "е",
    "Ё", "ｂｏｂ", "ⓑ", "①", "1", "½", "1/2", "ÿ", "Ÿ", "y", "ü", "u", "ue", "ä", "×", "x", "µ", "μ", "ñ",
    "n\u0303", "€", "e", "😀", "😁", "𝐀", "\u200b", "a\u200b",
]


def _holdable(text: str, charset: str) -> bool:
    if charset == "utf8mb3":
        return all(ord(c) <= 0xFFFF for c in text)
    if charset in ("latin1", "ascii"):
        try:
            text.encode("cp1252" if charset == "latin1" else "ascii")
        except UnicodeEncodeError:
            return False
    return True


@pytest.mark.parametrize("collation", sorted(key_fold.MODES))
def test_fold_groups_strings_as_the_servers_equality_does(sandbox_config, collation: str) -> None:
    charset = collation.split("_", 1)[0]
    corpus = [s for s in CORPUS if _holdable(s, charset)]
    with connect(sandbox_config, "eu", charset="utf8mb4") as conn, conn.cursor() as cur:
        key_fold.ensure(cur, {"c": collation})
        folds = {s: key_fold.fold(s, collation) for s in corpus}
        value = f"CONVERT(%s USING {charset}) COLLATE {collation}"
        # one statement: every pair's server verdict
        pairs = list(itertools.combinations(corpus, 2))
        differences = []
        for chunk in range(0, len(pairs), 500):
            part = pairs[chunk:chunk + 500]
            cur.execute("SELECT " + ", ".join(f"{value} = {value}" for _ in part), [s for p in part for s in p])
            for (a, b), equal in zip(part, cur.fetchone()):
                if bool(equal) != (folds[a] == folds[b]):
                    differences.append((a, b, "server says equal" if equal else "server says different"))
        assert not differences, f"{collation}: {differences}"
        cur.execute("SELECT " + ", ".join(key_fold.sql_fold(value, collation) for _ in corpus), corpus)
        sql = dict(zip(corpus, cur.fetchone()))
        assert {s: sql[s] for s in corpus} == folds


def test_the_triggers_hash_text_keys_by_the_python_identity(sandbox_config, unique: str, tmp_path) -> None:
    """Every corpus value (and a composite key) inserted under the triggers: the stored pk_hash is the
    Python identity's hash, and two spellings of one key are one clock row."""
    db = f"kf_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu"])
    tables = {"u": "utf8mb4_unicode_ci", "g": "utf8mb4_general_ci", "b": "utf8mb4_bin", "l": "latin1_swedish_ci"}
    with connect(config, "eu", charset="utf8mb4") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        for name, collation in tables.items():
            charset = collation.split("_", 1)[0]
            cur.execute(f"CREATE TABLE {db}.{name} (k VARCHAR(20) CHARACTER SET {charset} COLLATE {collation}, "
                        f"n INT, PRIMARY KEY (k, n))")
        init_region(config, "eu")
        try:
            for name, collation in tables.items():
                charset = collation.split("_", 1)[0]
                key_fold.ensure(cur, {"k": collation})
                expected: dict[bytes, str] = {}
                for value in (s for s in CORPUS if _holdable(s, charset)):
                    pk = {"k": value, "n": 7}
                    types = {"k": "varchar(20)", "n": "int"}
                    identity = key_hash(row_identity(pk, types, {"k": collation}))
                    if identity in expected:   # the server holds this key already, in another spelling
                        continue
                    cur.execute(f"INSERT INTO {db}.{name} (k, n) VALUES (%s, 7)", (value,))
                    expected[identity] = row_clock_key(pk, types)
                cur.execute(f"SELECT pk_hash, pk FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s AND tbl = %s",
                            (db, name))
                stored = {bytes(h): pk for h, pk in cur.fetchall()}
                assert stored == expected, collation
                cur.execute(f"SELECT COUNT(*) FROM {db}.{name}")
                assert cur.fetchone()[0] == len(expected)
        finally:
            cur.execute(f"DROP DATABASE {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))


def test_init_rekeys_old_clocks_of_text_keys_and_leaves_other_keys_alone(sandbox_config, unique: str,
                                                                          tmp_path) -> None:
    """Clocks written before the key identity (hashed by the exact text) move to their identity's
    hash; two spellings of one key merge; an INT key's clock is untouched; a second init moves nothing."""
    db = f"rk_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu"])
    clocks = f"{config.meta_db}.{ROW_CLOCKS}"
    with connect(config, "eu", charset="utf8mb4") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.s (k VARCHAR(20) PRIMARY KEY, v INT)")
        cur.execute(f"CREATE TABLE {db}.i (id INT PRIMARY KEY, v INT)")
        init_region(config, "eu")
        try:
            old = [("s", "3:bob", '{"eu": 2}', 100, 1), ("s", "3:BOB", '{"eu": 3, "us": 1}', 200, 0),
                   ("s", "4:amy ", '{"us": 4}', 300, 0), ("i", "2:42", '{"eu": 5}', 400, 0)]
            cur.execute(f"DELETE FROM {clocks} WHERE db = %s", (db,))
            for table, pk, counters, hlc, deleted in old:   # as the old triggers wrote them
                cur.execute(f"INSERT INTO {clocks} (db, tbl, pk_hash, pk, counters, hlc_us, deleted, origin) "
                            f"VALUES (%s, %s, %s, %s, %s, %s, %s, 'eu')",
                            (db, table, key_hash(pk), pk, counters, hlc, deleted))
            report = init_region(config, "eu")
            assert report.rekeyed == [f"{db}.s: 3"]
            key_fold.ensure(cur, {"k": "utf8mb4_unicode_ci"})

            def identity(value: str) -> bytes:
                return key_hash(row_identity({"k": value}, {"k": "varchar(20)"}, {"k": "utf8mb4_unicode_ci"}))

            cur.execute(f"SELECT tbl, pk_hash, pk, counters, hlc_us, deleted FROM {clocks} WHERE db = %s "
                        f"ORDER BY tbl, hlc_us", (db,))
            found = [(t, bytes(h), pk, json.loads(c), int(hlc), int(d)) for t, h, pk, c, hlc, d in cur.fetchall()]
            assert found == [("i", key_hash("2:42"), "2:42", {"eu": 5}, 400, 0),
                             ("s", identity("bob"), "3:BOB", {"eu": 3, "us": 1}, 200, 0),   # merged: max, newest
                             ("s", identity("AMY"), "4:amy ", {"us": 4}, 300, 0)]
            assert init_region(config, "eu").rekeyed == []
        finally:
            cur.execute(f"DROP DATABASE {db}")
            cur.execute(f"DELETE FROM {clocks} WHERE db = %s", (db,))


def test_init_and_config_check_refuse_an_unsupported_key_collation(sandbox_config, unique: str, tmp_path) -> None:
    db = f"uc_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu"])
    path = write_config(config, tmp_path / "cdcsync.toml")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (name VARCHAR(20) COLLATE utf8mb4_uca1400_ai_ci PRIMARY KEY, v INT)")
    try:
        done = subprocess.run([sys.executable, "-m", "cdcsync", "init", "--config", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stdout + done.stderr
        text = " ".join(done.stderr.split())   # one message (the console wraps it at its width)
        assert text.count("error:") == 1 and f"{db}.t.name" in text and "utf8mb4_uca1400_ai_ci" in text \
            and "ALTER the column" in text, done.stderr
        with connect(config, "eu") as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (db,))
            assert cur.fetchone() == (0,)
        done = subprocess.run([sys.executable, "-m", "cdcsync", "config", "check", "--config", str(path), "--json"],
                              capture_output=True, text=True, timeout=120)
        results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        check = [r for r in results if r["check"] == "key collations"]
        assert check and check[0]["outcome"] == "fail" and f"{db}.t.name" in check[0]["detail"], done.stdout
        assert done.returncode == 1
    finally:
        with connect(config, "eu") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
