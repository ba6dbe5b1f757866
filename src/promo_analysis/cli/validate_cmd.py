"""``promo-analysis validate``: check a dataset folder against the data contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: exit codes: the contract holds / rules fail / the input cannot be used at all
EXIT_OK, EXIT_VIOLATIONS, EXIT_UNUSABLE = 0, 1, 2


def validate_command(
    path: Annotated[
        Path, typer.Argument(help="Dataset folder: one .parquet or .csv file per table.")
    ],
    quarantine: Annotated[
        Path | None,
        typer.Option(
            "--quarantine",
            help="Write the rows that satisfy the contract to DIR (a cleaned dataset) and the "
            "rejected rows with their rules to DIR/rejected/, and print the reconciliation.",
            metavar="DIR",
        ),
    ] = None,
    encoding: Annotated[
        str,
        typer.Option(help="Encoding of CSV files, e.g. gb18030 or gbk for Chinese Excel."),
    ] = "utf-8",
    engine: Annotated[str, typer.Option(help="duckdb (default) or spark.")] = "duckdb",
) -> None:
    """Check a dataset against data contract v1 and print every failing rule.

    Exit code 0: the contract holds; 1: rules fail (rows can be quarantined); 2: unusable input (missing folder, unreadable file, missing required table or column).
    """  # noqa: E501 - typer shows each docstring paragraph as one line
    from promo_analysis.contract import DataContractError, validate
    from promo_analysis.contract import quarantine as run_quarantine
    from promo_analysis.dataset import DatasetError, load_dataset

    try:
        ds = load_dataset(path, engine=engine, encoding=encoding)
    except (FileNotFoundError, DatasetError, ValueError, ImportError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    report = validate(ds)
    typer.echo(report.to_text())
    if report.unusable:
        typer.echo("error: the dataset is unusable (see missing tables/columns above)", err=True)
        raise typer.Exit(EXIT_UNUSABLE)
    if quarantine is not None:
        try:
            result = run_quarantine(ds, quarantine, report=report)
        except (FileExistsError, DataContractError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(EXIT_UNUSABLE) from None
        typer.echo(result.to_text())
        if not result.balanced:  # pragma: no cover - would be a bug in quarantine
            typer.echo("error: the reconciliation does not balance", err=True)
            raise typer.Exit(EXIT_UNUSABLE)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_VIOLATIONS)


def register(app: typer.Typer) -> None:
    """Add the ``validate`` subcommand to ``app``."""
    app.command("validate")(validate_command)
