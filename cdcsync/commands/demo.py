"""`cdcsync demo`: the newcomer's first run (what `make demo` calls). Logic in cdcsync/demo/."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(dir: Path = typer.Option(None, "--dir", help="Sandbox directory, kept afterwards with its servers stopped "
                                                      "(default: a temporary one, removed)."),
         keep: bool = typer.Option(False, "--keep", help="Leave the sandbox's servers running at the end."),
         seed: int = typer.Option(7, "--seed", help="Workload random seed."),
         duration: float = typer.Option(25.0, "--duration", min=1, help="Seconds the writers run at most."),
         writers: int = typer.Option(3, "--writers", min=1, help="Writer threads per region."),
         writes: int = typer.Option(150, "--writes", min=1, help="Writes per writer at most."),
         keys: int = typer.Option(12, "--keys", min=1,
                                  help="Keys per table the writers share (fewer keys, more conflicts)."),
         settle: float = typer.Option(90.0, "--settle-timeout", min=1,
                                      help="Seconds to wait for quiescence after the writers stop.")) -> None:
    """Start a 3-region sandbox and the pipeline, write the same rows concurrently in every region,
    and watch them converge: conflicts resolved and logged, then `verify`.

    Exits 0 when verify finds every region's databases and caches equal, 1 otherwise, 130 when
    interrupted. Everything it started is stopped on the way out.
    """
    from cdcsync.demo.run import DemoOptions, main
    from cdcsync.demo.workload import WorkloadSpec

    spec = WorkloadSpec(writers_per_region=writers, keys_per_table=keys, writes_per_writer=writes,
                        duration_s=duration, seed=seed)
    code = main(DemoOptions(dir=dir, keep=keep, spec=spec, settle_s=settle))
    if code:
        raise typer.Exit(code)
