"""Binlog positions. A position is always a transaction boundary: resuming mid-transaction loses rows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BinlogPosition:
    """Where the next transaction starts.

    `gtid_state` is what resume uses on MariaDB (`domain-server-seq` per domain, comma-separated);
    python-mysql-replication ignores file/pos there. On MySQL, file/pos is what resume uses.
    """

    gtid_state: str
    file: str
    pos: int

    def describe(self) -> str:
        return f"gtid={self.gtid_state or '-'} {self.file}:{self.pos}"


class MariaGtidState:
    """The last GTID seen per replication domain, as MariaDB's `@@gtid_binlog_pos` spells it."""

    __slots__ = ("_by_domain", "_text")

    def __init__(self, state: str = "") -> None:
        self._by_domain: dict[int, str] = {}
        self._text: str | None = ""
        for gtid in filter(None, (part.strip() for part in state.split(","))):
            self.update(gtid)

    def update(self, gtid: str) -> None:
        domain = gtid.split("-", 1)[0]
        if not domain.isdigit() or gtid.count("-") != 2:
            raise ValueError(f"not a MariaDB GTID: {gtid!r}")
        by_domain = self._by_domain
        by_domain[int(domain)] = gtid
        # The capture asks for the text after every transaction; with one domain (the usual case)
        # it is the GTID itself, otherwise it is rebuilt on the next ask.
        self._text = gtid if len(by_domain) == 1 else None

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._text = ",".join(self._by_domain[d] for d in sorted(self._by_domain))
        return text

    def seq(self, domain: int) -> int | None:
        gtid = self._by_domain.get(domain)
        return int(gtid.rsplit("-", 1)[1]) if gtid else None
