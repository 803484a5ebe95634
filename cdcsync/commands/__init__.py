"""One module per `cdcsync` command group (a Typer sub-app each); the work they call lives in
cdcsync/tools/, producers/ and consumers/."""

__all__ = [
    "cache", "common", "config", "conflicts", "consumer", "demo", "dlq", "init", "lookup", "markers",
    "producer", "region", "run", "sandbox", "schema", "status", "tombstones", "verify"
]
