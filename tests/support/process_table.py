"""The process table (/proc), read as an operator reads `ps`: to find a supervisor's children and
check that none is orphaned or running twice."""

from __future__ import annotations

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
