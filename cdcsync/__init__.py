"""cdcsync: the command line (`cli`, `commands/`), the operator tools behind it (`tools/`: init,
verify, status, regions, ...), the demo and the supervisor. The top layer: nothing below imports
it (the import-linter contracts in pyproject.toml)."""

__version__ = "0.1.0"

__all__ = [
    "__version__", "cli", "commands", "connection_checks", "demo", "expected_errors", "logging_setup",
    "supervisor", "tools"
]
