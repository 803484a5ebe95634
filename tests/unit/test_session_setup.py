"""One session setup per purpose (consumers/db/session_setup.py), and which values need the ENUM path."""

from __future__ import annotations

from consumers.db import session_setup
from consumers.db.session_setup import enum_labels, enum_zero_columns


def test_the_applier_is_strict_and_stores_what_a_non_strict_source_stores() -> None:
    modes = session_setup.APPLY_SQL_MODE.split(",")
    assert "STRICT_ALL_TABLES" in modes and "ALLOW_INVALID_DATES" in modes and "NO_AUTO_VALUE_ON_ZERO" in modes
    assert "NO_ZERO_DATE" not in modes and "NO_ZERO_IN_DATE" not in modes
    assert f"sql_mode = '{session_setup.APPLY_SQL_MODE}'" in session_setup.APPLY
    assert "time_zone = '+00:00'" in session_setup.APPLY and "@cdcsync_applying = 1" in session_setup.APPLY
    assert f"sql_mode = '{session_setup.APPLY_SQL_MODE}'" in session_setup.OPERATOR_WRITE
    assert "applying" not in session_setup.OPERATOR_WRITE       # an override is a local write
    assert "sql_mode" not in session_setup.READ


def test_enum_labels_read_the_wire_type() -> None:
    assert enum_labels("enum('a','it''s','b\\\\c','é')") == ("a", "it's", "b\\\\c", "é")
    assert enum_labels("enum('','x')") == ("", "x")
    assert enum_labels("enum('''','x,y')") == ("'", "x,y")
    assert enum_labels("enum(''',''')") == ("','",)
    assert enum_labels("set('','x')") is None and enum_labels("varchar(3)") is None


def test_only_an_enums_invalid_empty_value_takes_the_enum_zero_path() -> None:
    types = {"id": "int", "en": "enum('a','b')", "with_empty": "enum('','a')", "st": "set('x')", "v": "varchar(3)",
             "quote": "enum(''',''')"}
    image = {"id": 1, "en": "", "with_empty": "", "st": "", "v": "", "quote": ""}
    assert enum_zero_columns(types, image) == ("en", "quote")
    assert enum_zero_columns(types, {**image, "en": "a", "quote": "','"}) == ()
    assert enum_zero_columns(types, {"en": None}) == ()
