"""The `leadgate` command: parse, call a use case, print."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from leadgate.adapters.model_source import read_model
from leadgate.domain.yamldoc import SpecError
from leadgate.summary import model_summary

app = typer.Typer(
    help="leadgate: decide which leads go to sales, and when.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Check and show scoring models.", no_args_is_help=True)
app.add_typer(model_app, name="model")

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


@model_app.command("check")
def model_check(
    file: Annotated[Path, typer.Argument(help="The model file (YAML).")],
) -> None:
    """Validate a model file and print a readable summary of it."""
    try:
        model = read_model(file)
    except SpecError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise fail(f"{len(exc.problems)} problem(s) in {file}") from None
    out.print(model_summary(model))
    out.print(f"[green]ok[/green]: {file} is a valid model")


@model_app.command("show")
def model_show() -> None:
    """Print the summary of the built-in default model."""
    out.print(model_summary(read_model(None)))


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        sys.stderr.close()
