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


def main() -> None:
    app()
