"""``promo-analysis report``: render the regional report of every region of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: exit codes: every region rendered / at least one region failed / bad parameters or data
EXIT_OK, EXIT_REGION_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def report_command(
    data: Annotated[
        Path, typer.Option("--data", help="Dataset folder (e.g. data/sample).")
    ] = Path("data/sample"),
    regions: Annotated[
        str | None,
        typer.Option("--regions", help="Comma-separated region ids (default: all in the data)."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder of the run folders; OUT/latest is the newest.")
    ] = Path("reports"),
    workers: Annotated[int, typer.Option("--workers", help="Notebooks run at once.")] = 2,
    period_start: Annotated[
        str | None, typer.Option("--period-start", help="YYYY-MM-DD (default: last year).")
    ] = None,
    period_end: Annotated[str | None, typer.Option("--period-end", help="YYYY-MM-DD.")] = None,
    compare_to: Annotated[
        str,
        typer.Option(
            "--compare-to", help="previous_year (default), none, or YYYY-MM-DD..YYYY-MM-DD."
        ),
    ] = "previous_year",
    lang: Annotated[str, typer.Option("--lang", help="Label language: zh or en.")] = "zh",
    template: Annotated[
        Path | None,
        typer.Option("--template", help="Template notebook (default: regional_report.ipynb)."),
    ] = None,
    k: Annotated[
        int, typer.Option("--k", help="Smallest number of customers a published cell shows.")
    ] = 10,
) -> None:
    """Render every region's report to offline HTML with an index page and a manifest.

    Exit code 0: every region rendered; 1: at least one region failed (the others are written); 2: bad parameters or unusable data (nothing rendered).
    """  # noqa: E501 - typer shows each docstring paragraph as one line
    from promo_analysis.dataset import DatasetError
    from promo_analysis.report.params import ReportParameterError
    from promo_analysis.report.render import render_reports

    try:
        summary = render_reports(
            data,
            regions=regions,
            out=out,
            template=template,
            workers=workers,
            period_start=period_start,
            period_end=period_end,
            compare_to=compare_to,
            lang=lang,
            k=k,
            progress=typer.echo,
        )
    except (ReportParameterError, DatasetError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    n_ok = len(summary.regions) - len(summary.failed)
    typer.echo(f"{n_ok}/{len(summary.regions)} regions rendered in {summary.seconds:.1f} s")
    typer.echo(f"manifest: {summary.manifest}")
    typer.echo(f"index: {summary.index}")
    if summary.failed:
        typer.echo(f"error: failed regions: {', '.join(summary.failed)}", err=True)
        raise typer.Exit(EXIT_REGION_FAILED)


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``promo-analysis`` command."""
    app.command("report")(report_command)
