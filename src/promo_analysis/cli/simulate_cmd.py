"""``promo-analysis simulate``: write a simulated dataset (tables, dataset.json, truth.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: exit codes: written / bad parameters
EXIT_OK, EXIT_BAD_PARAMETERS = 0, 2


def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write.")],
    scenario: Annotated[
        str,
        typer.Option(help="Scenario name (china-post-2022, china-post-2022-null) or .toml path."),
    ] = "china-post-2022",
    scale: Annotated[
        float, typer.Option(help="Every count and yuan figure is SCALE x the 2022 facts.")
    ] = 0.01,
    regions: Annotated[
        str | None,
        typer.Option(help="Comma-separated region ids, e.g. guangxi,shanxi, or 'all' for all "
                     "31 provincial-level regions (default: the scenario's regions)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same inputs give identical files.")] = 0,
    format: Annotated[str, typer.Option(help="parquet (default) or csv.")] = "parquet",
    partitioned: Annotated[
        bool,
        typer.Option("--partitioned", help="Parquet only: write shipments as "
                     "shipments/region_id=<id>/month=<YYYY-MM>/ part files and coupons by month."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes generating regions in parallel "
                     "(default: the CPUs, capped by the number of regions; 1 for small jobs). "
                     "The files are identical for any number."),
    ] = None,
) -> None:
    """Simulate walk-in parcels, coupons, campaigns, a randomized test and a survey, 2021-2022.

    Writes one file per table (with --partitioned, folders of Parquet part files for shipments
    and coupons) plus dataset.json and truth.json (the ground truth).
    """
    import json
    import time

    from promo_analysis.dataset import save_dataset
    from promo_analysis.simulate import simulate, write_simulation

    if format not in ("parquet", "csv"):
        typer.echo(f"error: --format must be parquet or csv, got {format!r}", err=True)
        raise typer.Exit(EXIT_BAD_PARAMETERS)
    if partitioned and format != "parquet":
        typer.echo("error: --partitioned needs --format parquet", err=True)
        raise typer.Exit(EXIT_BAD_PARAMETERS)
    if regions is not None and regions.strip().lower() == "all":
        from promo_analysis.regions import REGIONS

        regions = ",".join(REGIONS)
    t0 = time.perf_counter()
    try:
        if format == "parquet":
            # region by region: big scales do not need the whole dataset in memory
            path = write_simulation(
                out, scenario, scale=scale, regions=regions, seed=seed, partitioned=partitioned,
                workers=workers,
            )
        else:
            path = save_dataset(
                simulate(scenario, scale=scale, regions=regions, seed=seed, workers=workers),
                out, format=format,
            )
    except (ValueError, KeyError, FileExistsError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_BAD_PARAMETERS) from None
    meta = json.loads((path / "dataset.json").read_text(encoding="utf-8"))
    typer.echo(
        f"wrote {path}: scenario {meta['scenario']}, scale {scale}, seed {seed}, "
        f"regions {','.join(meta['regions'])}, tables {', '.join(meta['tables'])} "
        f"({time.perf_counter() - t0:.1f} s)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` subcommand to ``app``."""
    app.command("simulate")(simulate_command)
