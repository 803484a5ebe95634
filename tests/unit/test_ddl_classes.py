"""ALTER TABLE classification (common/ddl_classes.py): additive vs destructive, widen vs narrow."""

from __future__ import annotations

import pytest

from common.ddl_classes import classify, clauses, widens

TYPES = {"id": "int(11)", "name": "varchar(20)", "n": "int(11)", "u": "int(10) unsigned", "price": "decimal(8,2)",
         "kind": "enum('a','b')", "note": "text", "c": "char(4)"}


@pytest.mark.parametrize("old, new, expected", [
    ("varchar(20)", "VARCHAR(40) NULL", True), ("varchar(20)", "varchar(10)", False),
    ("varchar(20)", "varchar(20) NOT NULL DEFAULT 'x'", None),
    ("int(11)", "BIGINT", True), ("int(11)", "int", None), ("bigint(20)", "int", False),
    ("int(10) unsigned", "bigint unsigned", True), ("int(10) unsigned", "bigint", False),
    ("decimal(8,2)", "decimal(12,4)", True), ("decimal(8,2)", "decimal(8,4)", False),
    ("text", "mediumtext", True), ("mediumtext", "text", False), ("varchar(200)", "text", True),
    ("blob", "longblob", True), ("float", "double", True), ("double", "float", False),
    ("enum('a','b')", "enum('a','b','c')", True), ("enum('a','b')", "enum('b','a')", False),
    ("char(4)", "varchar(8)", False), ("int(11)", "varchar(20)", False),
])
def test_widens(old: str, new: str, expected: bool | None) -> None:
    assert widens(old, new) is expected


def test_additive_clauses() -> None:
    for statement in ("ALTER TABLE users ADD COLUMN phone VARCHAR(20) NULL",
                      "alter table `app`.`users` add phone varchar(20) default 'x, y', ADD INDEX by_name (name)",
                      "ALTER TABLE users MODIFY name VARCHAR(40), ALGORITHM=INSTANT",
                      "ALTER TABLE users CHANGE n n BIGINT NOT NULL, ADD UNIQUE KEY u2 (u)",
                      "/* why */ ALTER TABLE users ADD KEY (n), ADD COLUMN IF NOT EXISTS z INT"):
        found = classify(statement, TYPES)
        assert found is not None and found.additive, (statement, found)


def test_destructive_clauses_are_named() -> None:
    cases = {"ALTER TABLE users DROP COLUMN phone": "DROP COLUMN phone",
             "ALTER TABLE users DROP name": "DROP COLUMN name",
             "ALTER TABLE users CHANGE name full_name VARCHAR(20)": "a rename",
             "ALTER TABLE users RENAME TO people": "a rename",
             "ALTER TABLE users MODIFY name VARCHAR(10)": "name: varchar(20) -> varchar does not widen",
             "ALTER TABLE users DROP INDEX by_name": "an index or key dropped",
             "ALTER TABLE users ADD PRIMARY KEY (id, n)": "not in the additive class",
             "ALTER TABLE users MODIFY ghost INT": "MODIFY of unknown column ghost"}
    for statement, reason in cases.items():
        found = classify(statement, TYPES)
        assert found is not None and not found.additive
        assert any(r.startswith(reason) for r in found.reasons), (statement, found.reasons)


def test_one_destructive_clause_makes_the_statement_destructive() -> None:
    found = classify("ALTER TABLE users ADD COLUMN a INT, DROP COLUMN note", TYPES)
    assert found is not None and not found.additive and found.reasons == ("DROP COLUMN note",)


def test_not_an_alter() -> None:
    assert classify("CREATE TABLE t (id INT)", TYPES) is None
    assert clauses("TRUNCATE TABLE t") is None
    table, parts = clauses("ALTER TABLE `a``b`.t ADD x INT, ADD y VARCHAR(3)")  # type: ignore[misc]
    assert table == "`a``b`.t" and [p.column for p in parts] == ["x", "y"]


def test_a_modify_to_not_null_of_a_nullable_column_narrows() -> None:
    found = classify("ALTER TABLE users MODIFY name VARCHAR(40) NOT NULL", TYPES, frozenset({"name"}))
    assert found is not None and found.reasons == ("name: NULL -> NOT NULL does not widen",)
    assert classify("ALTER TABLE users MODIFY n BIGINT NOT NULL", TYPES, frozenset({"name"})).additive  # type: ignore[union-attr]
