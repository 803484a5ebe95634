"""Which server sessions a process holds: its TCP sockets' local ports, matched to PROCESSLIST hosts.

Lets a test `KILL CONNECTION` exactly one component's MySQL sessions (a real lost connection) without
touching the other tests' sessions, which use the same user.
"""

from __future__ import annotations

import os
from pathlib import Path

import pymysql


def local_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process `pid` has open (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def kill_sessions_of(pid: int, conn: pymysql.Connection) -> int:
    """KILL CONNECTION every session of the server `conn` talks to that process `pid` holds; returns how many."""
    ports = local_ports(pid)
    with conn.cursor() as cur:
        cur.execute("SELECT ID, HOST FROM information_schema.PROCESSLIST")
        ids = [i for i, host in cur.fetchall() if host and ":" in host and int(host.rsplit(":", 1)[1]) in ports]
        for session in ids:
            cur.execute(f"KILL CONNECTION {int(session)}")
    return len(ids)
