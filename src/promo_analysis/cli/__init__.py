"""The ``promo-analysis`` command.

Each subcommand lives in its own module of this package and is registered here; a module
defines ``register(app)``.
"""

from __future__ import annotations

import typer

from promo_analysis import __version__

app = typer.Typer(
    name="promo-analysis",
    help="Do coupon and festival campaigns really work? Validate, simulate and report.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"promo-analysis {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Do coupon and festival campaigns really work? Validate, simulate and report."""


def _register() -> None:
    from promo_analysis.cli import report_cmd, simulate_cmd, validate_cmd

    for module in (validate_cmd, report_cmd, simulate_cmd):
        module.register(app)


_register()
