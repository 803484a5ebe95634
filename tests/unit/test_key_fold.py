"""The key fold without a server: modes, PAD SPACE cutting, the identity text, the SQL, refusals,
and the Kafka key of two spellings. (Against the server's own `=`: tests/integration/test_key_fold.py.)"""

from __future__ import annotations

import pytest

from producers.capture import _same_key
from producers.clock_matching import ClockRows
from schemas import messages
from schemas import key_fold
from schemas.key_fold import UnsupportedCollation, Weights
from schemas.row_clock_key import key_hash, key_identity, row_clock_key, row_identity, sql_key_identity

# A toy case-insensitive collation: 2-byte weights, a space weighs 0x0209, 'ß' expands to 'ss',
# U+0301 (combining acute) is ignorable.
_TABLE = {" ": b"\x02\x09", "\t": b"\x02\x01", "ß": b"\x0f\xea\x0f\xea", "\u0301": b""}
for _c in "abcdefghijklmnopqrstuvwxyz":
    _TABLE[_c] = _TABLE[_c.upper()] = bytes([0x0e, ord(_c)])
_TABLE["s"] = _TABLE["S"] = b"\x0f\xea"
TOY = Weights("toy_ci", _TABLE, b"\xff\xfd", b"\x02\x09")


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(key_fold.MODES, "toy_ci", ("weights", "0209"))
    monkeypatch.setitem(key_fold._LOADED, "toy_ci", TOY)
    return "toy_ci"


def test_modes_of_the_supported_collations() -> None:
    assert key_fold.mode(None) == "exact" and key_fold.mode("utf8mb4_nopad_bin") == "exact"
    assert key_fold.mode("utf8mb4_bin") == "trim" and key_fold.mode("latin1_bin") == "trim"
    for name in ("utf8mb4_unicode_ci", "utf8mb4_general_ci", "utf8mb3_unicode_ci", "latin1_swedish_ci"):
        assert key_fold.mode(name) == "weights"


@pytest.mark.parametrize("collation", ["utf8mb4_uca1400_ai_ci", "utf8mb4_unicode_520_ci", "utf8mb4_czech_ci",
                                       "utf8mb4_0900_ai_ci"])
def test_unsupported_collations_are_refused_with_the_column_and_the_fix(collation: str) -> None:
    with pytest.raises(UnsupportedCollation) as err:
        key_fold.folding({"id": "utf8mb4_unicode_ci", "name": collation}, "shop.users")
    line = str(err.value)
    assert "\n" not in line and "shop.users.name" in line and collation in line and "ALTER" in line


def test_exact_and_trim_need_no_weights() -> None:
    assert key_fold.fold("Bob  ", "utf8mb4_nopad_bin") == "Bob  "
    assert key_fold.fold("Bob  ", "utf8mb4_bin") == "Bob" == key_fold.fold("Bob", "utf8mb4_bin")
    assert key_fold.fold("Bob\t", "utf8mb4_bin") == "Bob\t"           # only U+0020 pads


def test_weights_fold_is_case_and_accent_insensitive_and_cuts_trailing_spaces(toy: str) -> None:
    same = ["bob", "BOB", "Bob ", "bob   ", "bo\u0301b"]
    assert len({key_fold.fold(s, toy) for s in same}) == 1
    assert key_fold.fold("bob", toy) == "0E620E6F0E62"
    assert key_fold.fold("bob\t", toy) != key_fold.fold("bob", toy)      # a tab is no padding
    assert key_fold.fold(" bob", toy) != key_fold.fold("bob", toy)       # leading spaces count
    assert key_fold.fold("straße", toy) == key_fold.fold("STRASSE", toy)
    assert key_fold.fold("", toy) == key_fold.fold("   ", toy) == ""
    assert key_fold.fold("a😀", toy) == key_fold.fold("A😁", toy)          # the table's supplementary weight


def test_an_unknown_character_is_refused(toy: str) -> None:
    with pytest.raises(key_fold.UnfoldableKey, match=r"U\+00E9"):
        key_fold.fold("é", toy)


def test_weights_must_be_loaded_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_fold, "_LOADED", {})
    with pytest.raises(RuntimeError, match="not loaded"):
        key_fold.fold("x", "utf8mb4_unicode_ci")
    assert not key_fold.loaded("utf8mb4_unicode_ci") and key_fold.loaded("utf8mb4_bin")


def test_identity_replaces_folded_text_and_keeps_the_rest(toy: str) -> None:
    types = {"k": "varchar(20)", "n": "int"}
    pk_a, pk_b = {"k": "Bob ", "n": 7}, {"k": "bob", "n": 7}
    assert row_clock_key(pk_a, types) == "4:Bob ,1:7"                      # the display text keeps the spelling
    assert row_identity(pk_a, types, {"k": toy}) == row_identity(pk_b, types, {"k": toy}) == "12:0E620E6F0E62,1:7"
    assert row_identity({"k": "bob", "n": 8}, types, {"k": toy}) != row_identity(pk_b, types, {"k": toy})
    # no folding column: the identity is the key text, so existing clocks of such keys keep their hash
    assert key_identity({"id": 42}, {"id": "int"}, None) == row_clock_key({"id": 42}, {"id": "int"}) == "2:42"


def test_key_values_and_kafka_keys_of_two_spellings_are_one(toy: str) -> None:
    fold = {"k": toy}
    keys = set()
    for spelling in ("bob", "BOB", "bob  "):
        pk = {"k": spelling, "n": 7}
        keys.add(messages.row_key(key_fold.key_values(pk, key_fold.fold_pk(pk, fold)), b""))
    assert keys == {b'["0E620E6F0E62",7]'}      # one Kafka key: one partition, whatever the partitioner
    assert _same_key(fold, ("k", "n"), ["bob", 7], ["BOB ", 7])
    assert not _same_key(fold, ("k", "n"), ["bob", 7], ["bob", 8])
    assert key_fold.fold_pk({"n": 1}, {}) is None and key_fold.key_values({"n": 1}, None) == [1]


def test_sql_fold_and_identity_expression() -> None:
    assert key_fold.sql_fold("NEW.`k`", "utf8mb4_nopad_bin") == "CONVERT(NEW.`k` USING utf8mb4)"
    assert key_fold.sql_fold("NEW.`k`", "utf8mb4_bin") == "TRIM(TRAILING ' ' FROM CONVERT(NEW.`k` USING utf8mb4))"
    assert key_fold.sql_fold("NEW.`k`", "utf8mb4_unicode_ci") == (
        "CONVERT(TRIM(TRAILING '0209' FROM HEX(WEIGHT_STRING(NEW.`k`))) USING utf8mb4)")
    assert "TRIM(TRAILING '20' FROM" in key_fold.sql_fold("x", "latin1_swedish_ci")
    sql = sql_key_identity([("id", "int(11)", None), ("k", "varchar(9)", "utf8mb4_general_ci")], "OLD")
    assert sql.startswith("CONCAT(CHAR_LENGTH(CONVERT(CAST(OLD.`id` AS CHAR) USING utf8mb4))")
    assert "TRIM(TRAILING '0020' FROM HEX(WEIGHT_STRING(OLD.`k`)))" in sql


def test_clock_rows_pair_with_changes_by_the_identity_hash(toy: str) -> None:
    """The trigger's clock row shows one spelling (`pk`), the change another: they pair by pk_hash."""
    types = {"k": "varchar(20)"}
    identity = row_identity({"k": "BOB"}, types, {"k": toy})
    rows = ClockRows()
    rows.add([{"values": {"db": "d", "tbl": "t", "pk": "3:bob", "pk_hash": key_hash(identity).rstrip(b"\0"),
                          "counters": '{"eu": 2}', "hlc_us": 5, "heads": None, "deleted": 0}}], 1)
    message = {"kind": "change", "db": "d", "table": "t", "op": "update", "pk": {"k": "BOB"}, "types": types,
               "pk_fold": key_fold.fold_pk({"k": "BOB"}, {"k": toy})}
    rows.attach([message], applied=False, published=lambda db, table: True)
    assert message["vclock"] == {"counters": {"eu": 2}, "hlc_us": 5}
