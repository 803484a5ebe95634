"""What an `ALTER TABLE` does to a replicated table: additive (every event written under the old
schema still fits, and every event written under the new one fits once it is applied) or
destructive (a column or an index goes, a column is renamed, a type narrows or changes kind).

Pure text analysis, for the schema owner's DDL (docs/schema-changes.md): the additive first class
is ADD COLUMN, ADD INDEX / KEY / UNIQUE / FULLTEXT, and a MODIFY / CHANGE that keeps the name and
widens the type (`widens`): a longer VARCHAR, a larger integer of the same signedness, a larger
TEXT or BLOB, a DECIMAL with no fewer integer or fraction digits, FLOAT to DOUBLE, an ENUM or SET
with values appended. Anything not recognised is destructive, so it is refused unless allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["APPLIED_MARK", "AlterClass", "Clause", "applied_by_cdcsync", "classify", "clauses", "widens"]

# Leads every DDL a database sink runs for a schema owner: the region's producer publishes it to
# `_schema` (its cache sink refreshes) but neither reports it nor marks it for replication (no loop).
APPLIED_MARK = "/* cdcsync:applied */"


def applied_by_cdcsync(statement: str) -> bool:
    return statement.lstrip().startswith(APPLIED_MARK)


@dataclass(frozen=True, slots=True)
class Clause:
    kind: str                 # add_column, add_index, modify_column, rename, drop_column, drop_index, option, other
    column: str | None = None
    new_type: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class AlterClass:
    additive: bool
    clauses: tuple[Clause, ...] = ()
    reasons: tuple[str, ...] = field(default=())   # one per destructive clause, naming it


_ALTER = re.compile(r"\s*(?:/\*.*?\*/\s*)*ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+(?:IF\s+EXISTS\s+)?"
                    r"((?:`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?)\s*(.*)$",
                    re.IGNORECASE | re.DOTALL)
_NAME = r"(`(?:[^`]|``)+`|[\w$]+)"
_INDEX_WORDS = ("INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL")
_OPTION = re.compile(r"(ALGORITHM|LOCK)\s*=?\s*\w+$", re.IGNORECASE)


def _ident(text: str) -> str:
    return text[1:-1].replace("``", "`") if text.startswith("`") else text


def _split(body: str) -> list[str]:
    """Top-level comma-separated parts (not inside parentheses or quotes)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    parts.append(body[start:].strip())
    return [p for p in parts if p]


def _clause(text: str) -> Clause:
    words = text.split()
    head = [w.upper() for w in words[:3]]
    if _OPTION.match(text):
        return Clause("option", text=text)
    if head[0] == "ADD":
        rest = words[1:]
        if rest and rest[0].upper() in _INDEX_WORDS:
            return Clause("add_index", text=text)
        if rest and rest[0].upper() in ("PRIMARY", "CONSTRAINT", "FOREIGN", "CHECK", "PARTITION", "PERIOD",
                                        "SYSTEM"):
            return Clause("other", text=text)
        match = re.match(rf"ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}\s+(.+)$", text, re.I | re.S)
        if match and not match.group(2).lstrip().startswith("("):
            return Clause("add_column", _ident(match.group(1)), match.group(2).strip(), text)
        return Clause("other", text=text)
    if head[0] == "MODIFY":
        match = re.match(rf"MODIFY\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?{_NAME}\s+(.+)$", text, re.I | re.S)
        if match:
            return Clause("modify_column", _ident(match.group(1)), match.group(2).strip(), text)
    if head[0] == "CHANGE":
        match = re.match(rf"CHANGE\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?{_NAME}\s+{_NAME}\s+(.+)$", text, re.I | re.S)
        if match:
            old, new = _ident(match.group(1)), _ident(match.group(2))
            if old != new:
                return Clause("rename", old, match.group(3).strip(), text)
            return Clause("modify_column", old, match.group(3).strip(), text)
    if head[0] == "DROP":
        if len(head) > 1 and head[1] in ("INDEX", "KEY", "PRIMARY", "FOREIGN", "CONSTRAINT", "CHECK"):
            return Clause("drop_index", text=text)
        match = re.match(rf"DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?{_NAME}\s*(?:CASCADE|RESTRICT)?$", text, re.I)
        if match:
            return Clause("drop_column", _ident(match.group(1)), text=text)
    if head[0] == "RENAME":
        return Clause("rename", text=text)
    return Clause("other", text=text)


def clauses(statement: str) -> tuple[str, list[Clause]] | None:
    """(table as written, its clauses) of an ALTER TABLE; None for any other statement."""
    match = _ALTER.match(statement.strip().rstrip(";"))
    if not match:
        return None
    return match.group(1), [_clause(part) for part in _split(match.group(2))]


# -- types ------------------------------------------------------------------------------------------
_INTS = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 5}
_TEXTS = {"tinytext": 1, "text": 2, "mediumtext": 3, "longtext": 4}
_BLOBS = {"tinyblob": 1, "blob": 2, "mediumblob": 3, "longblob": 4}
_TYPE = re.compile(r"\s*(\w+)\s*(?:\(([^)]*)\))?\s*(.*)$", re.DOTALL)
_ATTRIBUTES = re.compile(r"\b(NOT\s+NULL|NULL|DEFAULT|COLLATE|CHARACTER|CHARSET|COMMENT|AUTO_INCREMENT|"
                         r"AFTER|FIRST|INVISIBLE|ON\s+UPDATE)\b.*$", re.IGNORECASE | re.DOTALL)


def _type(text: str) -> tuple[str, list[str], bool]:
    """(base name, arguments, unsigned) of a column type, its attributes (NULL, DEFAULT, ...) left out."""
    match = _TYPE.match(text)
    if not match:
        return text.strip().lower(), [], False
    base, args, rest = match.group(1).lower(), match.group(2), _ATTRIBUTES.sub("", match.group(3))
    values = [a.strip() for a in _split(args)] if args else []
    return base, values, "unsigned" in rest.lower()


def widens(old: str, new: str) -> bool | None:
    """True when every value of type `old` fits `new` unchanged (`new` wider or equal), False when
    some may not (narrower, or another kind), None when the types are the same."""
    (ob, oa, ou), (nb, na, nu) = _type(old), _type(new)
    if (ob, ou) == (nb, nu) and (oa == na or ob in _INTS):
        return None
    if ob in _INTS and nb in _INTS:
        return ou == nu and _INTS[nb] >= _INTS[ob]
    if ob in ("varchar", "char", "varbinary", "binary") and nb == ob:
        return bool(oa and na) and int(na[0]) >= int(oa[0])
    if ob == "char" and nb == "varchar" or ob == "binary" and nb == "varbinary":
        return False          # CHAR drops trailing spaces, VARCHAR keeps them: values would change
    if ob == "varchar" and nb in _TEXTS:
        return _TEXTS[nb] >= 2 or bool(oa) and int(oa[0]) <= 255
    if ob in _TEXTS and nb in _TEXTS:
        return _TEXTS[nb] >= _TEXTS[ob]
    if ob in _BLOBS and nb in _BLOBS:
        return _BLOBS[nb] >= _BLOBS[ob]
    if ob in ("decimal", "numeric") and nb in ("decimal", "numeric"):
        op, os_ = (int(oa[0]) if oa else 10), (int(oa[1]) if len(oa) > 1 else 0)
        np_, ns = (int(na[0]) if na else 10), (int(na[1]) if len(na) > 1 else 0)
        return ou == nu and ns >= os_ and np_ - ns >= op - os_
    if ob == "float" and nb in ("double", "float") and not oa and not na:
        return ou == nu
    if ob in ("enum", "set") and nb == ob:
        return na[:len(oa)] == oa
    return False


def classify(statement: str, current_types: dict[str, str], nullable: frozenset[str] = frozenset()) -> AlterClass | None:
    """The class of an ALTER TABLE, given the table's COLUMN_TYPEs now (column -> type, before the
    statement runs) and its `nullable` columns (a MODIFY to NOT NULL narrows them); None for
    another statement."""
    parsed = clauses(statement)
    if parsed is None:
        return None
    found, reasons = parsed[1], []
    for clause in found:
        if clause.kind in ("add_column", "add_index", "option"):
            continue
        if clause.kind == "modify_column":
            old = current_types.get(clause.column or "")
            if old is None:
                reasons.append(f"MODIFY of unknown column {clause.column}")
            elif widens(old, clause.new_type or "") is False:
                reasons.append(f"{clause.column}: {old} -> {_type(clause.new_type or '')[0]} does not widen")
            elif clause.column in nullable and re.search(r"\bNOT\s+NULL\b", clause.new_type or "", re.I):
                reasons.append(f"{clause.column}: NULL -> NOT NULL does not widen")
            continue
        label = {"drop_column": f"DROP COLUMN {clause.column}", "drop_index": "an index or key dropped",
                 "rename": f"a rename ({clause.text})"}.get(clause.kind, f"not in the additive class ({clause.text})")
        reasons.append(label)
    return AlterClass(not reasons, tuple(found), tuple(reasons))
