"""Checks of the deployment files (compose, Kubernetes, systemd, alerts, dashboard) against the code.

Docker, a cluster and systemd are not there when the tests run, so the tests check what can go
wrong without them: a command line the real `cdcsync` CLI would refuse, a metric name that no
code defines, a server flag the producer's preflight would reject. Everything here reads the
real definitions (the Typer app, the metric constructors, `producers.preflight`), never a copy.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PACKAGES = ("cdcsync", "producers", "consumers", "common", "schemas")


class CommandLineError(ValueError):
    """The CLI would refuse this command line; the message says why."""


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    path: tuple[str, ...]          # e.g. ("consumer",) or ("dlq", "list")
    params: dict[str, Any]         # every parameter's value, from the argv, the environment or the default


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """Exactly `env` as the process environment, so envvar-backed options see what the container sees."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def parse_cli(argv: Sequence[str], env: Mapping[str, str] | None = None) -> ParsedCommand:
    """Parse `argv` (without the program name) with the real `cdcsync` command, without running it.

    Raises CommandLineError with the CLI's own message for an unknown command or option, a
    missing required option or a value of the wrong type.
    """
    import typer

    from cdcsync.cli import app

    command: Any = typer.main.get_command(app)
    rest = list(argv)
    path: list[str] = []
    while hasattr(command, "commands"):           # a group: the next word names the sub-command
        if not rest or rest[0] not in command.commands:
            raise CommandLineError(f"{' '.join(argv)!r}: no such command {(rest or [''])[0]!r} under "
                                   f"{' '.join(['cdcsync', *path])!r} (has {sorted(command.commands)})")
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    with _environment(env or {}):
        try:
            ctx = command.make_context(" ".join(["cdcsync", *path]), rest)
        except Exception as err:  # click's UsageError family; typer may vendor click, so no import
            if not hasattr(err, "format_message"):
                raise                 # not a usage error: a bug, shown as one
            raise CommandLineError(f"{' '.join(argv)!r}: {err.format_message()}") from None
    return ParsedCommand(tuple(path), dict(ctx.params))


def dockerfile_entrypoint(path: Path) -> list[str]:
    """The exec-form ENTRYPOINT of a Dockerfile (the one line `ENTRYPOINT ["..."]`)."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("ENTRYPOINT ")]
    if len(lines) != 1:
        raise ValueError(f"{path}: expected one ENTRYPOINT line, found {len(lines)}")
    return json.loads(lines[0].removeprefix("ENTRYPOINT "))


def split_command(line: str) -> list[str]:
    """A systemd ExecStart= or shell command line as words (systemd's quoting is shell-like)."""
    return shlex.split(line.replace("\\\n", " "))


def env_setting_exists(config: Any, variable: str) -> bool:
    """Whether `CDCSYNC_A__B__C` names the setting `a.b.c` of this loaded config (the override
    naming in docs/reference/configuration.md): a typo in a variable name would otherwise be ignored."""
    node: object = config.model_dump()
    for segment in variable.removeprefix("CDCSYNC_").lower().split("__"):
        if not isinstance(node, dict) or segment not in node:
            return False
        node = node[segment]
    return True


# --- metrics --------------------------------------------------------------------------------

_METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum", "_created"),
    "Summary": ("", "_count", "_sum", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    name: str                      # as written in the constructor
    kind: str                      # Counter, Gauge, Histogram, ...
    labels: tuple[str, ...]
    where: str                     # file:line

    def series_names(self) -> set[str]:
        """The names Prometheus sees for this metric (a Counter's `_total`, a Histogram's `_bucket`...)."""
        base = self.name.removesuffix("_total") if self.kind == "Counter" else self.name
        return {base + suffix for suffix in _SUFFIXES[self.kind]}


def _string_list(node: ast.AST | None) -> tuple[str, ...]:
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return ()


def metric_definitions(root: Path = ROOT, packages: Sequence[str] = SOURCE_PACKAGES) -> dict[str, MetricDefinition]:
    """Every prometheus_client metric the code constructs, by name: `Counter("name", "help", [labels])`.

    Read from the source (not from a registry) so that metrics only created deep inside a service
    count too, wherever a later change puts them.
    """
    found: dict[str, MetricDefinition] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                kind = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if kind not in _METRIC_CLASSES or not node.args:
                    continue
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    continue
                labels_node = node.args[2] if len(node.args) > 2 else next(
                    (k.value for k in node.keywords if k.arg == "labelnames"), None)
                found[first.value] = MetricDefinition(first.value, kind, _string_list(labels_node),
                                                      f"{path.relative_to(root)}:{node.lineno}")
    return found


def series_index(definitions: Mapping[str, MetricDefinition]) -> dict[str, MetricDefinition]:
    """Prometheus series name -> the definition it comes from."""
    return {series: d for d in definitions.values() for series in d.series_names()}


_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "resets", "changes", "absent",
    "absent_over_time", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "present_over_time", "quantile_over_time", "histogram_quantile", "time", "timestamp",
    "clamp_min", "clamp_max", "clamp", "abs", "ceil", "floor", "round", "vector", "scalar", "label_replace",
    "label_join", "sort", "sort_desc", "predict_linear", "le", "inf", "nan", "atan2",
}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUP_LABELS = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and strings removed)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", _GROUPING.sub(" ", _RANGES.sub(" ", text)))
    text = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[smhdwy]?\b", " ", text)
    return {m for m in _IDENT.findall(text) if m not in _PROMQL_WORDS}


def promql_selector_labels(expr: str) -> dict[str, set[str]]:
    """Per metric name, the labels its `{...}` matchers use."""
    text = _STRINGS.sub('""', expr)
    result: dict[str, set[str]] = {}
    for name, body in _SELECTOR.findall(text):
        result.setdefault(name, set()).update(_MATCHER_LABEL.findall(body))
    return result


def promql_grouping_labels(expr: str) -> set[str]:
    """Labels named in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`."""
    return {label.strip() for group in _GROUP_LABELS.findall(expr) for label in group.split(",") if label.strip()}


# --- MySQL server flags ---------------------------------------------------------------------------

def mysqld_variables(args: Sequence[str]) -> dict[str, str]:
    """`mysqld --name=value` command-line flags as the server variables they set (`SHOW GLOBAL VARIABLES`
    spelling: underscores, and `log_bin = ON` when binary logging is enabled)."""
    variables: dict[str, str] = {}
    for arg in args:
        if not arg.startswith("--"):
            continue
        name, _, value = arg[2:].partition("=")
        name = name.replace("-", "_").lower()
        if name.startswith("skip_"):
            variables[name.removeprefix("skip_")] = "OFF"
            continue
        variables[name] = value if value else "ON"
        if name == "log_bin":
            variables["log_bin_basename"] = value
            variables["log_bin"] = "ON"
    return variables
