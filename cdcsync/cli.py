"""The `cdcsync` command. Each sub-command lives in its own module under cdcsync/commands/."""

from __future__ import annotations

import typer

from cdcsync.commands import (cache, config, conflicts, consumer, demo, dlq, init, lookup, markers, producer, region,
                              run, sandbox, schema, status, tombstones, verify)

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Multi-region change-data-capture sync: binlog -> Kafka -> caches and peer databases.")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(schema.app, name="schema")
app.add_typer(config.app, name="config")
app.add_typer(cache.app, name="cache")
app.add_typer(dlq.app, name="dlq")
app.add_typer(conflicts.app, name="conflicts")
app.add_typer(tombstones.app, name="tombstones")
app.add_typer(region.app, name="region")
app.add_typer(markers.app, name="markers")
app.command("producer")(producer.producer)
app.command("consumer")(consumer.consumer)
app.command("demo")(demo.demo)
app.command("run")(run.run)
app.command("status")(status.status)
app.command("verify")(verify.verify)
app.command("init")(init.init)
app.command("lookup")(lookup.lookup)
app.command("bloom")(lookup.bloom)


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", envvar="CDCSYNC_DEBUG",
                                        help="Show the traceback of an expected failure (a refused login, an "
                                             "unreachable server) instead of its one-line message. Accepted "
                                             "anywhere on the command line.")) -> None:
    """Multi-region change-data-capture sync: binlog -> Kafka -> caches and peer databases."""


def main(argv: list[str] | None = None) -> None:
    """Run the command; an expected failure (cdcsync/expected_errors.py) ends as one line unless `--debug`."""
    import os
    import sys

    from cdcsync import expected_errors
    from cdcsync.commands.common import report

    args = list(sys.argv[1:] if argv is None else argv)
    # Taken from anywhere on the line: an operator adds it after the sub-command when retrying.
    debug = "--debug" in args or os.environ.get("CDCSYNC_DEBUG", "").lower() in ("1", "true", "yes")
    args = [a for a in args if a != "--debug"]
    try:
        app(args, prog_name="cdcsync")
    except Exception as err:
        known = None if debug else expected_errors.describe(err)
        if known is None:
            raise
        message, code = known
        report(message)
        sys.exit(code)
