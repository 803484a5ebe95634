"""Start-up checks name the problem and the fix."""

from __future__ import annotations

from producers.preflight import binlog_problems, privilege_problems

GOOD = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}


def test_good_server_has_no_problems() -> None:
    assert binlog_problems(GOOD, "mariadb") == []


def test_each_bad_setting_is_named_with_its_fix() -> None:
    assert "binary logging is off" in binlog_problems({**GOOD, "log_bin": "OFF"}, "mariadb")[0]
    problem, = binlog_problems({**GOOD, "binlog_format": "MIXED"}, "mariadb")
    assert "binlog_format is MIXED" in problem and "SET GLOBAL binlog_format = 'ROW'" in problem
    problem, = binlog_problems({**GOOD, "binlog_row_image": "MINIMAL"}, "mariadb")
    assert "binlog_row_image is MINIMAL" in problem
    problem, = binlog_problems({**GOOD, "binlog_row_metadata": "MINIMAL"}, "mariadb")
    assert "binlog_row_metadata is MINIMAL" in problem
    problem, = binlog_problems({**GOOD, "log_bin_compress": "ON"}, "mariadb")
    assert "log_bin_compress" in problem
    problem, = binlog_problems({**GOOD, "binlog_row_value_options": "PARTIAL_JSON"}, "mysql")
    assert "PARTIAL_JSON" in problem
    missing = {k: v for k, v in GOOD.items() if k != "binlog_row_metadata"}
    assert "MariaDB >= 10.5" in binlog_problems(missing, "mariadb")[0]


def test_privileges() -> None:
    user = "TO `r`@`%`"
    assert privilege_problems([f"GRANT ALL PRIVILEGES ON *.* {user}"], ["app"]) == []
    ok = [f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* {user}", f"GRANT SELECT ON `app`.* {user}"]
    assert privilege_problems(ok, ["app"]) == []
    problems = privilege_problems([f"GRANT SELECT ON *.* {user}"], ["app"])
    assert any("REPLICATION SLAVE" in p for p in problems)
    assert any("REPLICATION CLIENT" in p for p in problems)
    problems = privilege_problems([f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* {user}",
                                   f"GRANT SELECT ON `app`.* {user}"], ["app", "shop"])
    assert problems == ["missing SELECT on shop: GRANT SELECT ON <schema>.* TO <reader>"]


def test_applier_needs_dml_on_replicated_schemas_and_metadata_tables() -> None:
    from cdcsync.tools.applier_grants import applier_problems

    least = ["GRANT USAGE ON *.* TO `a`@`%`",
             "GRANT SELECT, INSERT, UPDATE, DELETE ON `shop`.* TO `a`@`%`",
             *(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `cdcsync`.`{t}` TO `a`@`%`"
               for t in ("apply_marker", "row_clocks", "conflict_log", "published_deletes", "schema_waits",
                         "schema_ddl"))]
    assert applier_problems(least, ["shop"], "cdcsync") == []
    assert applier_problems(["GRANT ALL PRIVILEGES ON *.* TO `a`@`%`"], ["shop"], "cdcsync") == []
    problems = applier_problems(least[:2] + least[3:], ["shop", "crm"], "cdcsync")
    assert problems == [
        "missing SELECT, INSERT, UPDATE, DELETE on crm.*: GRANT SELECT, INSERT, UPDATE, DELETE ON crm.* TO <applier>",
        "missing SELECT, INSERT, UPDATE, DELETE on cdcsync.apply_marker: "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON cdcsync.apply_marker TO <applier>"]
