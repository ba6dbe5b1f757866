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
        typer.Option(help="Comma-separated region ids, e.g. guangxi,shanxi (default: the "
                     "scenario's regions)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same inputs give identical files.")] = 0,
    format: Annotated[str, typer.Option(help="parquet (default) or csv.")] = "parquet",
) -> None:
    """Simulate walk-in parcels, coupons, campaigns, a randomized test and a survey, 2021-2022.

    Writes one file per table plus dataset.json and truth.json (the ground truth).
    """
    from promo_analysis.dataset import save_dataset
    from promo_analysis.simulate import simulate

    try:
        ds = simulate(scenario, scale=scale, regions=regions, seed=seed)
    except (ValueError, KeyError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_BAD_PARAMETERS) from None
    path = save_dataset(ds, out, format=format)
    s = ds.table("shipments")
    n = int(s.count().to_pandas())
    typer.echo(
        f"wrote {path}: scenario {ds.meta['scenario']}, scale {scale}, seed {seed}, "
        f"regions {','.join(ds.meta['regions'])}, {n} shipments "
        f"({ds.truth.calibration['seconds']:.1f} s)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` subcommand to ``app``."""
    app.command("simulate")(simulate_command)
