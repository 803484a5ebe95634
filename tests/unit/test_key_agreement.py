"""One key text names a row everywhere (issue 12): the producer's Kafka key, the cache sink's key,
the cache reader's key, the Bloom filter item and verify's row pairing all come from
`schemas.codec.canonical_pk`, and agree for awkward keys. The text is on the wire: the golden
values below pin it, so a change to it cannot pass silently (it would orphan existing topics'
keys and caches' entries)."""

from __future__ import annotations

import base64

import pytest

from cdcsync.tools import verify
from consumers.cache import reader as cache_reader
from consumers.cache.bloom import maintainer as bloom_maintainer
from schemas.cache_layout import cache_key, event_key_values
from schemas import key_fold, messages
from schemas.codec import canonical_pk, decode, encode
from tests.unit.test_key_fold import TOY

BINARY = base64.b64encode(b"\x00\xff\x80").decode()   # a VARBINARY key value as the wire carries it
# (case, pk as the binlog gives it, types, text key column -> collation, the key text on the wire)
CASES = [
    ("int", {"id": 42}, {"id": "int"}, {}, '[42]'),
    ("int-looking string", {"code": "42"}, {"code": "varchar(8)"}, {}, '["42"]'),
    ("unicode", {"name": "Zoë 😀 日本"}, {"name": "varchar(20)"}, {}, '["Zoë 😀 日本"]'),
    ("quotes and controls", {"name": 'a"b\\c\n'}, {"name": "varchar(20)"}, {}, '["a\\"b\\\\c\\n"]'),
    ("multi-column", {"tenant": 7, "sku": "a-1", "n": -3}, {"tenant": "int", "sku": "varchar(8)", "n": "int"}, {},
     '[7,"a-1",-3]'),
    ("binary", {"h": BINARY}, {"h": "varbinary(3)"}, {}, f'["{BINARY}"]'),
    ("pad-space trimmed", {"name": "bob  "}, {"name": "varchar(8)"}, {"name": "utf8mb4_bin"}, '["bob"]'),
    ("case-folded", {"id": 1, "name": "BoB"}, {"id": "int", "name": "varchar(8)"}, {"name": "toy_ci"},
     '[1,"0E620E6F0E62"]'),
]


@pytest.fixture(autouse=True)
def toy_collation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(key_fold.MODES, "toy_ci", ("weights", "0209"))
    monkeypatch.setitem(key_fold._LOADED, "toy_ci", TOY)


def _produced(pk: dict, types: dict, fold: dict, prefix: bytes = b"") -> tuple[bytes, dict]:
    """What the producer publishes for an insert of `pk`: its Kafka key and its message."""
    txn = messages.TxnInfo("eu", "eu", 1, "0-1-1", "t1", 1)
    message = messages.change(txn, "bin.000001", 4, "shop", "items", "insert", dict(pk), None, dict(pk), types)
    return messages.message_key(message, key_fold.folding(fold, "shop.items"), prefix), message


@pytest.mark.parametrize(("pk", "types", "fold", "wire"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_kafka_cache_bloom_reader_and_verify_keys_agree(pk, types, fold, wire) -> None:
    kafka_key, message = _produced(pk, types, fold)
    event = decode(encode(message))                       # what both sinks receive
    assert kafka_key == wire.encode()                     # the key on the wire, pinned

    assert cache_key("cdc", "shop", "items", event_key_values(event)) == f"cdc:shop.items:{wire}"
    assert bloom_maintainer.added_keys(event) == [wire]
    info = cache_reader._TableInfo("shop", "items", None, tuple(pk), None,  # type: ignore[arg-type]
                                   key_fold.folding(fold, "shop.items"))
    hit = cache_reader._HitPath(b"cdc:shop.items:", True, None, info)
    assert hit.key(list(pk.values())) == f"cdc:shop.items:{wire}".encode()   # an application's lookup
    assert verify.row_key(dict(pk, extra="x"), list(pk), key_fold.folding(fold, "shop.items")) == wire
    assert canonical_pk(list(pk.values()) if not fold else event_key_values(event)) == wire


def test_per_region_topics_prefix_the_same_text() -> None:
    key, _ = _produced({"id": 1, "name": "é"}, {"id": "int", "name": "varchar(4)"}, {}, b"shop.items:")
    assert key == 'shop.items:[1,"é"]'.encode()


def test_spellings_of_a_folded_key_share_every_key_and_types_stay_apart() -> None:
    types, fold = {"id": "int", "name": "varchar(8)"}, {"name": "toy_ci"}
    spellings = [_produced({"id": 1, "name": s}, types, fold)[0] for s in ("bob", "BOB", "Bob ")]
    assert len(set(spellings)) == 1
    assert _produced({"id": 1}, {"id": "int"}, {})[0] != _produced({"id": "1"}, {"id": "varchar(2)"}, {})[0]
