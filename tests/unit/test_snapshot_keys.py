"""`key_values`: a tombstone's canonical key text back to the wire `pk` a change event of its row
carries (the snapshot publishes tombstones from `row_clocks`, which keeps only the key text)."""

from __future__ import annotations

import pytest

from schemas.row_clock_key import key_values, row_clock_key
from schemas.values import zero_date


@pytest.mark.parametrize("pk, types", [
    ({"id": 42}, {"id": "int"}),
    ({"id": -9223372036854775808}, {"id": "bigint"}),
    ({"id": 18446744073709551615}, {"id": "bigint unsigned"}),
    ({"a": "x:1,2:yz", "b": -7}, {"a": "varchar(20)", "b": "bigint"}),
    ({"a": "", "b": "é,:"}, {"a": "varchar(3)", "b": "char(4)"}),
    ({"d": "-12.340"}, {"d": "decimal(10,3)"}),
    ({"b": "AP8="}, {"b": "varbinary(4)"}),
    ({"b": "AAAAAA=="}, {"b": "binary(4)"}),
    ({"d": "2024-02-29"}, {"d": "date"}),
    ({"d": zero_date("0000-00-00")}, {"d": "date"}),
    ({"t": "2024-02-29 23:59:59"}, {"t": "datetime"}),
    ({"t": "2024-02-29 23:59:59.123000"}, {"t": "datetime(3)"}),
    ({"t": "2024-02-29 23:59:59.123456"}, {"t": "datetime(6)"}),
    ({"t": zero_date("0000-00-00 00:00:00.000")}, {"t": "datetime(3)"}),
    ({"t": zero_date("2024-02-30 10:00:00")}, {"t": "datetime"}),
])
def test_key_values_inverts_the_key_text(pk, types) -> None:
    found = key_values(row_clock_key(pk, types), types, list(pk))
    assert found == pk and list(found) == list(pk)


@pytest.mark.parametrize("key, types, columns", [
    ("1:7,1:8", {"id": "int"}, ["id"]),        # two parts, one key column
    ("1:x", {"id": "int"}, ["id"]),            # not an integer
    ("2:07", {"id": "int"}, ["id"]),           # not the canonical text of any integer
    ("1:7", {"id": "int"}, ["other"]),          # a column the types do not name
])
def test_key_values_refuses_a_key_of_another_shape(key, types, columns) -> None:
    with pytest.raises((ValueError, KeyError)):
        key_values(key, types, columns)


def test_trigger_visibility_follows_the_trigger_privilege() -> None:
    from common.clock_coverage import _trigger_scopes
    grants = ["GRANT SELECT, INSERT ON `app`.* TO `a`@`h`", "GRANT SELECT, TRIGGER ON `shop`.* TO `a`@`h`",
              "GRANT ALL PRIVILEGES ON `x`.`t` TO `a`@`h`", "GRANT USAGE ON *.* TO `a`@`h`"]
    assert _trigger_scopes(grants) == {"shop.*", "x.t"}
    assert _trigger_scopes(["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]) == {"*.*"}
