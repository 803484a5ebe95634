"""Schema drift comparison (cdcsync/tools/schema_drift.py) on hand-made snapshots."""

from __future__ import annotations

from cdcsync.tools.schema_drift import ABSENT, Column, Key, TableShape, compare, lines

ID = Column("id", "int(11)", False, None)
NAME = Column("name", "varchar(20)", True, "NULL", "utf8mb4_general_ci")
USERS = TableShape((ID, NAME), (Key("PRIMARY", ("id",)),), "utf8mb4_general_ci")


def test_identical_regions_have_no_drift() -> None:
    assert compare({"eu": {"app.users": USERS}, "us": {"app.users": USERS}, "ap": {"app.users": USERS}}) == []


def test_column_added_in_one_region() -> None:
    phone = Column("phone", "varchar(20)", True, "NULL", "utf8mb4_general_ci")
    eu = TableShape((ID, NAME, phone), USERS.keys, USERS.collation)
    [drift] = compare({"eu": {"app.users": eu}, "us": {"app.users": USERS}})
    assert (drift.table, drift.aspect, drift.name) == ("app.users", "column", "phone")
    assert drift.values == {"eu": "varchar(20) NULL DEFAULT NULL COLLATE utf8mb4_general_ci", "us": ABSENT}
    assert lines([drift]) == ["app.users: column phone differs: eu: varchar(20) NULL DEFAULT NULL COLLATE "
                              "utf8mb4_general_ci; us: (absent)"]


def test_type_nullability_default_and_collation_of_a_column() -> None:
    for changed in (Column("name", "varchar(40)", True, "NULL", "utf8mb4_general_ci"),
                    Column("name", "varchar(20)", False, None, "utf8mb4_general_ci"),
                    Column("name", "varchar(20)", True, "'x'", "utf8mb4_general_ci"),
                    Column("name", "varchar(20)", True, "NULL", "utf8mb4_bin")):
        other = TableShape((ID, changed), USERS.keys, USERS.collation)
        [drift] = compare({"eu": {"app.users": USERS}, "us": {"app.users": other}})
        assert (drift.aspect, drift.name) == ("column", "name")


def test_column_order_is_not_drift() -> None:
    other = TableShape((NAME, ID), USERS.keys, USERS.collation)
    assert compare({"eu": {"app.users": USERS}, "us": {"app.users": other}}) == []


def test_keys_collation_triggers_and_missing_table() -> None:
    unique = TableShape(USERS.columns, (*USERS.keys, Key("by_name", ("name",))), "utf8mb4_bin", "stale")
    found = compare({"eu": {"app.users": USERS, "app.notes": USERS}, "us": {"app.users": unique}})
    assert [(d.table, d.aspect, d.name) for d in found] == [
        ("app.notes", "table", ""), ("app.users", "key", "by_name"), ("app.users", "collation", ""),
        ("app.users", "clock triggers", "")]
    assert found[0].values == {"eu": "present", "us": ABSENT}
    assert found[1].values == {"eu": ABSENT, "us": "(name)"}


def test_stale_triggers_everywhere_are_reported_missing_everywhere_are_not() -> None:
    stale = TableShape(USERS.columns, USERS.keys, USERS.collation, "stale")
    missing = TableShape(USERS.columns, USERS.keys, USERS.collation, "missing")
    assert [d.aspect for d in compare({"eu": {"t.a": stale}, "us": {"t.a": stale}})] == ["clock triggers"]
    assert compare({"eu": {"t.a": missing}, "us": {"t.a": missing}}) == []


def test_regions_with_one_value_are_grouped_in_the_line() -> None:
    other = TableShape((ID,), USERS.keys, USERS.collation)
    [drift] = compare({"eu": {"t.a": USERS}, "us": {"t.a": USERS}, "ap": {"t.a": other}})
    assert drift.line().endswith("eu, us: varchar(20) NULL DEFAULT NULL COLLATE utf8mb4_general_ci; ap: (absent)")
