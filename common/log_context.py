"""What every log line of a process says about where it is: region, component and position.

Region and component are fixed when a command starts (`set_component`); the position moves: the
producer sets its checkpointed binlog position, a sink the last source offset it committed. One
process runs one component, so a module-level context is enough (the sink's extra runner threads
share the component and report the last position any of them committed).
"""

from __future__ import annotations

import logging

_context = {"region": "-", "component": "-", "position": "-"}


def set_component(region: str, component: str) -> None:
    _context.update(region=region, component=component)


def set_position(position: str) -> None:
    _context["position"] = position


def current() -> dict[str, str]:
    return dict(_context)


class ContextFilter(logging.Filter):
    """Adds `region`, `component` and `position` to every record passing the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.region = _context["region"]
        record.component = _context["component"]
        record.position = _context["position"]
        return True
