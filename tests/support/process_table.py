"""The process table (/proc), read as an operator reads `ps`: to find a supervisor's children and
check that none is orphaned or running twice."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every live process (zombies are not alive)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[0] != "Z":
            found[int(entry.name)] = (int(stat[1]), line)
    return found


def components(config_path: Path) -> dict[int, str]:
    """The producer and consumer processes running with this config, wherever their parent is."""
    return {pid: line for pid, (_, line) in processes().items()
            if str(config_path) in line and (" producer " in line or " consumer " in line)}


def component(config_path: Path, kind: str, region: str) -> list[int]:
    """The pids of one region's `producer`, `db` or `cache` component running with this config."""
    marker = " producer " if kind == "producer" else " consumer "
    return [pid for pid, line in components(config_path).items()
            if marker in line and f"--region {region} " in line and (kind == "producer" or f"--sink {kind}" in line)]


def socket_owner(local_port: int, remote_port: int, among: Iterable[int] | None = None) -> int | None:
    """The pid of the process holding the loopback TCP socket from `local_port` to `remote_port`
    (the kernel's socket table, then the open files of each process, or of `among`), None when none
    of ours does."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (int(fields[1].rsplit(":", 1)[1], 16) == local_port
                    and int(fields[2].rsplit(":", 1)[1], 16) == remote_port):
                inode = fields[9]
                break
        if inode is not None:
            break
    if inode is None or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for pid in processes() if among is None else among:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue          # another user's process, or gone
        for fd in fds:
            try:
                if str(fd.readlink()) == target:
                    return pid
            except OSError:
                continue
    return None


def region_of(pid: int) -> str | None:
    """`eu` for a process started with `--region eu` (a component, or `cdcsync cache rebuild`)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    return argv[argv.index("--region") + 1] if "--region" in argv[:-1] else None
