"""What the database sink's user must be granted: DML on the replicated schemas and on cdcsync's
metadata tables, nothing more (loop prevention is a marker row, so no SUPER or BINLOG REPLAY)."""

from __future__ import annotations

import re

from common import metadata_tables

DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
_GRANT = re.compile(r"^GRANT (.+?) ON (\S+) TO ", re.IGNORECASE)


def parse_grants(lines: list[str]) -> dict[str, set[str]]:
    """SHOW GRANTS output as target (`*.*`, `db.*`, `db.table`, unquoted) -> privileges."""
    grants: dict[str, set[str]] = {}
    for line in lines:
        match = _GRANT.match(line)
        if match:
            target = match.group(2).replace("`", "")
            grants.setdefault(target, set()).update(p.strip().upper() for p in match.group(1).split(","))
    return grants


def _granted(grants: dict[str, set[str]], privilege: str, db: str, table: str | None) -> bool:
    targets = ["*.*", f"{db}.*"] + ([f"{db}.{table}"] if table else [])
    return any(privilege in grants.get(t, ()) or "ALL PRIVILEGES" in grants.get(t, ()) for t in targets)


def applier_problems(lines: list[str], schemas: list[str], meta_db: str) -> list[str]:
    """Missing applier privileges, given SHOW GRANTS output lines."""
    grants = parse_grants(lines)
    problems = []
    for schema in schemas:
        missing = [p for p in DML if not _granted(grants, p, schema, None)]
        if missing:
            problems.append(f"missing {', '.join(missing)} on {schema}.*: "
                            f"GRANT {', '.join(DML)} ON {schema}.* TO <applier>")
    for table in metadata_tables.TABLES:
        missing = [p for p in DML if not _granted(grants, p, meta_db, table)]
        if missing:
            problems.append(f"missing {', '.join(missing)} on {meta_db}.{table}: "
                            f"GRANT {', '.join(DML)} ON {meta_db}.{table} TO <applier>")
    return problems


def may_create(lines: list[str], meta_db: str) -> bool:
    """Whether the user could create the metadata tables itself."""
    return _granted(parse_grants(lines), "CREATE", meta_db, None)
